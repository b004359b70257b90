//! Command-line interface (placeholder until the pipeline lands).
pub fn main() -> i32 {
    0
}
