//! Test module: prints a valid JSON object of about 1.5 MiB (more than 1 MiB) on stdout.
use std::io::Write;

fn main() {
    let mut out = std::io::stdout().lock();
    let chunk = [b'x'; 1024];
    let mut ok = out.write_all(b"{\"data\":\"").is_ok();
    for _ in 0..1536 {
        ok &= out.write_all(&chunk).is_ok();
    }
    ok &= out.write_all(b"\"}\n").and_then(|()| out.flush()).is_ok();
    if !ok {
        eprintln!("big_output: stdout refused the output");
        std::process::exit(1);
    }
}
