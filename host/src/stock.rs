//! The stock transforms shipped inside the binary (built from `plugins/` by `build.rs`).

include!(concat!(env!("OUT_DIR"), "/stock.rs"));

/// The component bytes of stock plugin `name`.
pub fn lookup(name: &str) -> Option<&'static [u8]> {
    STOCK.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes)
}

/// Every stock plugin's name.
pub fn names() -> Vec<&'static str> {
    STOCK.iter().map(|(n, _)| *n).collect()
}
