//! The `embed!` macro of Preflight, re-exported as `preflight::embed!`: a thin shim over
//! [`preflight_check::expand`], where the work (and its tests) live.

use proc_macro::TokenStream;

/// Embeds and checks a migration directory at compile time; see `preflight::embed!`.
#[proc_macro]
pub fn embed(input: TokenStream) -> TokenStream {
    preflight_check::expand(input.into()).into()
}
