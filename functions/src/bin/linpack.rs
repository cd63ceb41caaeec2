//! The `linpack` catalog function as a program: JSON parameters on stdin, JSON result on stdout.
fn main() -> std::process::ExitCode {
    ditto_functions::cli::main("linpack", ditto_functions::kernels::linpack)
}
