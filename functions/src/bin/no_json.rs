//! Test module: prints plain text instead of JSON.
fn main() {
    println!("hello, this is not JSON");
}
