//! A WASI command program: a component, but not a plugin. `plugin inspect`
//! must say so plainly, and loading it as a codec must be refused.

fn main() {
    println!("hello from a command, not a plugin");
}
