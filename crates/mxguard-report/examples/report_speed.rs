//! The collector and the text report on log files, without the CLI: a
//! quick loop for profiling the report (`perf record`) without
//! rebuilding the whole mxguard binary. The figures that count come from
//! bench/report.sh.
//!
//!   cargo build --release -p mxguard-report --example report_speed
//!   target/release/examples/report_speed target/bench-report/mail.log > out.txt

use mxguard_report::collect::{Collector, Options};
use mxguard_report::{input, text};
use std::path::PathBuf;

fn main() {
    let files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let mut collector = Collector::new(Options {
        syslog_name: Some("postfix".into()),
        ..Default::default()
    });
    if let Err(e) = input::read_paths(&files, &mut collector) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    let report = collector.finish();
    print!("{}", text::render(&report, &Default::default()));
}
