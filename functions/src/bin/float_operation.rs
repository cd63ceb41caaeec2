//! The `float_operation` catalog function as a program: JSON parameters on stdin, JSON result on stdout.
fn main() -> std::process::ExitCode {
    ditto_functions::cli::main("float_operation", ditto_functions::kernels::float_operation)
}
