//! Test module: prints valid JSON that is neither an object nor an array.
fn main() {
    println!("42");
}
