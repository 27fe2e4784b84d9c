//! `cargo run --release -p mxguard-ban --example ban_speed -- FILTER LOG [--dump]`:
//! the filter path of `mxguard ban test` alone, CPU time printed, for
//! profiling the filters without building the whole binary. `--dump`
//! prints every match (line number, rule, host, user, attempts): two
//! builds' dumps compared line by line show a speed change kept the
//! filter's answers.
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (spec, log) = match (args.get(1), args.get(2)) {
        (Some(s), Some(l)) => (s, l),
        _ => {
            eprintln!("usage: ban_speed FILTER LOG [--dump]");
            std::process::exit(2);
        }
    };
    let dump = args.get(3).map(String::as_str) == Some("--dump");
    let mut f = mxguard_ban::filter::builtin(spec).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let file = std::fs::File::open(log).expect("open the log");
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let s = mxguard_ban::tester::run(
        f.as_mut(),
        std::io::BufReader::with_capacity(1 << 20, file),
        |n, _, hit| {
            if dump {
                let _ = writeln!(
                    out,
                    "{n} r{} {} {:?} x{}",
                    hit.rule, hit.host.text, hit.user, hit.attempts
                );
            }
        },
    )
    .expect("read the log");
    let _ = writeln!(
        out,
        "{} lines, {} matched, {:.3} s, {:.0} lines/s",
        s.lines, s.matched, s.seconds, s.lines_per_second
    );
}
