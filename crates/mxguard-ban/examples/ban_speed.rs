//! `cargo run --release -p mxguard-ban --example ban_speed -- FILTER LOG`:
//! the filter path of `mxguard ban test` alone, CPU time printed, for
//! profiling the filters without building the whole binary.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (spec, log) = match (args.get(1), args.get(2)) {
        (Some(s), Some(l)) => (s, l),
        _ => {
            eprintln!("usage: ban_speed FILTER LOG");
            std::process::exit(2);
        }
    };
    let mut f = mxguard_ban::filter::builtin(spec).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let file = std::fs::File::open(log).expect("open the log");
    let s = mxguard_ban::tester::run(
        f.as_mut(),
        std::io::BufReader::with_capacity(1 << 20, file),
        |_, _, _| {},
    )
    .expect("read the log");
    println!(
        "{} lines, {} matched, {:.3} s, {:.0} lines/s",
        s.lines, s.matched, s.seconds, s.lines_per_second
    );
}
