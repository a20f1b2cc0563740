//! `cargo xtask bench` refuses bad input before it builds or deletes anything.

mod common;

use common::*;

#[test]
fn an_unknown_target_is_named_with_the_known_ones() {
    let result = xtask(&["bench", "--short", "--target", "nope"]);
    assert!(!result.status.success());
    let stderr = text(&result.stderr);
    assert_eq!(stderr.trim(), r#"error: unknown target "nope" (known: default, gpu, vastai)"#);
}

#[test]
fn lock_refuses_an_unknown_lock() {
    let result = xtask(&["lock", "rocm"]);
    assert!(!result.status.success());
    assert_eq!(text(&result.stderr).trim(), r#"error: unknown lock "rocm" (known: cpu, cuda)"#);
}
