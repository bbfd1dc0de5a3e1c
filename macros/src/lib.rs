//! The macros of Preflight, re-exported as `preflight::embed!` and `#[preflight::test]`: thin
//! shims over [`preflight_check::expand`] and [`preflight_check::expand_test`], where the work
//! (and its tests) live.

use proc_macro::TokenStream;

/// Embeds and checks a migration directory at compile time; see `preflight::embed!`.
#[proc_macro]
pub fn embed(input: TokenStream) -> TokenStream {
    preflight_check::expand(input.into()).into()
}

/// A test that receives its own database at the latest migration; see `preflight::test`.
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    preflight_check::expand_test(attr.into(), item.into()).into()
}
