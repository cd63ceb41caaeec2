//! The `html_template` catalog function as a program: JSON parameters on stdin, JSON result on stdout.
fn main() -> std::process::ExitCode {
    ditto_functions::cli::main("html_template", ditto_functions::kernels::html_template)
}
