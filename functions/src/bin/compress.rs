//! The `compress` catalog function as a program: JSON parameters on stdin, JSON result on stdout.
fn main() -> std::process::ExitCode {
    ditto_functions::cli::main("compress", ditto_functions::kernels::compress)
}
