//! The `slotway` binary.

fn main() {
    println!("slotway");
}
