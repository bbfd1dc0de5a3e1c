//! The expansion of `#[preflight::test]`: a test that receives its own database, already at the
//! latest migration.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, FnArg, Ident, ItemFn, Token, Type};

/// Expands `#[preflight::test]` / `#[preflight::test(migrations = PATH)]` on a test function
/// whose one parameter is the database:
///
/// ```text
/// #[preflight::test]                          // uses `MIGRATIONS` in scope
/// fn inserts(db: TestDatabase) { ... }        // PostgreSQL, sync
/// #[preflight::test(migrations = crate::M)]
/// async fn reads(db: TestDatabase) { ... }    // PostgreSQL, on a current-thread tokio runtime
/// #[preflight::test]
/// fn local(db: SqliteTestDatabase) { ... }    // SQLite, a copy of a migrated file
/// ```
///
/// The test becomes a plain `#[test]` that creates the database (a copy of the set's migrated
/// template, see `preflight::testing`), passes it in, and drops it when the test ends or
/// panics. Other attributes (`#[should_panic]`, `#[ignore]`) and a `Result` return type are
/// kept. Misuse is a `compile_error!` at the offending token.
pub fn expand_test(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand_checked(attr, item) {
        Ok(tokens) => tokens,
        Err(e) => e.to_compile_error(),
    }
}

/// Which helper makes the database, chosen by the parameter's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
}

fn expand_checked(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args: Args = syn::parse2(attr)?;
    let function: ItemFn = syn::parse2(item)?;
    let sig = &function.sig;
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "#[preflight::test]: a test function cannot be generic",
        ));
    }
    if let Some(attr) = function.attrs.iter().find(|a| is_test_attribute(a.path())) {
        return Err(syn::Error::new(
            attr.span(),
            "#[preflight::test] makes the function a test (and runs an `async fn` on a tokio \
             runtime itself): remove this attribute",
        ));
    }
    let mut inputs = sig.inputs.iter();
    let (Some(param), None) = (inputs.next(), inputs.next()) else {
        let span = sig
            .inputs
            .iter()
            .nth(1)
            .map_or(sig.ident.span(), Spanned::span);
        return Err(syn::Error::new(
            span,
            "#[preflight::test]: the test takes exactly one parameter, its database: \
             `db: TestDatabase` (PostgreSQL) or `db: SqliteTestDatabase` (SQLite), from \
             `preflight::testing`",
        ));
    };
    let FnArg::Typed(param) = param else {
        return Err(syn::Error::new(
            param.span(),
            "#[preflight::test] goes on a free function, not a method",
        ));
    };
    let backend = backend_of(&param.ty)?;

    let migrations = &args.migrations;
    let is_async = sig.asyncness.is_some();
    let make = match (backend, is_async) {
        (Backend::Postgres, false) => {
            quote!(::preflight::testing::TestDatabase::new(&#migrations))
        }
        (Backend::Postgres, true) => {
            quote!(::preflight::testing::TestDatabase::new_async(&#migrations).await)
        }
        (Backend::Sqlite, _) => {
            quote!(::preflight::testing::SqliteTestDatabase::new(&#migrations))
        }
    };

    // The user's function, unchanged but renamed, nested in the test: its body, parameter
    // pattern and return type keep their spans, so errors in them point at the user's code.
    let body_name = Ident::new("__preflight_test_body", Span::mixed_site());
    let mut body = function.clone();
    body.attrs.clear();
    body.vis = syn::Visibility::Inherited;
    body.sig.ident = body_name.clone();
    let attrs = &function.attrs;
    let vis = &function.vis;
    let name = &sig.ident;
    let output = &sig.output;
    let db = Ident::new("__preflight_db", Span::mixed_site());
    let run = if is_async {
        quote! {
            ::preflight::testing::block_on(async {
                let #db = #make;
                #body_name(#db).await
            })
        }
    } else {
        quote! {
            let #db = #make;
            #body_name(#db)
        }
    };
    Ok(quote_spanned! {sig.ident.span()=>
        #(#attrs)*
        #[::core::prelude::v1::test]
        #vis fn #name() #output {
            #body
            #run
        }
    })
}

/// `test`, `tokio::test`, `core::prelude::v1::test`, ... : an attribute that would make the
/// function a test a second time.
fn is_test_attribute(path: &syn::Path) -> bool {
    path.segments.last().is_some_and(|s| s.ident == "test")
}

fn backend_of(ty: &Type) -> syn::Result<Backend> {
    let last = match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    };
    match last.map(|s| s.ident.to_string()).as_deref() {
        Some("TestDatabase") => Ok(Backend::Postgres),
        Some("SqliteTestDatabase") => Ok(Backend::Sqlite),
        _ => Err(syn::Error::new(
            ty.span(),
            format!(
                "#[preflight::test]: the parameter's type must be `TestDatabase` (PostgreSQL) or \
                 `SqliteTestDatabase` (SQLite) from `preflight::testing`, not `{}`",
                ty.to_token_stream()
            ),
        )),
    }
}

/// The attribute's arguments: nothing, or `migrations = <expression>`.
struct Args {
    migrations: Expr,
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            // Resolved where the test is written, like any name the user typed there.
            let name = Ident::new("MIGRATIONS", Span::call_site());
            return Ok(Args {
                migrations: syn::parse_quote!(#name),
            });
        }
        let key: Ident = input.parse()?;
        if key != "migrations" {
            return Err(syn::Error::new(
                key.span(),
                format!(
                    "#[preflight::test]: unknown option `{key}`; the one option is \
                     `migrations = PATH` (default: `MIGRATIONS` in scope)"
                ),
            ));
        }
        input.parse::<Token![=]>()?;
        let migrations: Expr = input.parse()?;
        let _ = input.parse::<Option<Token![,]>>()?;
        if !input.is_empty() {
            return Err(input.error("#[preflight::test]: unexpected tokens after the option"));
        }
        Ok(Args { migrations })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(attr: &str, item: &str) -> String {
        expand_test(attr.parse().unwrap(), item.parse().unwrap()).to_string()
    }

    #[test]
    fn sync_postgres_test_gets_a_database_from_the_default_set() {
        let out = expand("", "fn t(db: TestDatabase) { assert!(true); }");
        assert!(out.contains(":: core :: prelude :: v1 :: test"), "{out}");
        assert!(out.contains("fn t ()"), "{out}");
        assert!(
            out.contains(":: preflight :: testing :: TestDatabase :: new (& MIGRATIONS)"),
            "{out}"
        );
        assert!(!out.contains("block_on"), "{out}");
    }

    #[test]
    fn async_test_runs_on_a_runtime_with_the_async_constructor() {
        let out = expand(
            "migrations = crate::db::SET",
            "async fn t(db: preflight::testing::TestDatabase) -> Result<(), String> { Ok(()) }",
        );
        assert!(out.contains("block_on"), "{out}");
        assert!(
            out.contains("TestDatabase :: new_async (& crate :: db :: SET) . await"),
            "{out}"
        );
        assert!(out.contains("fn t () -> Result < () , String >"), "{out}");
    }

    #[test]
    fn sqlite_parameter_selects_the_sqlite_helper_and_keeps_attributes() {
        let out = expand(
            "",
            "#[should_panic] fn t(db: SqliteTestDatabase) { panic!() }",
        );
        assert!(
            out.contains("SqliteTestDatabase :: new (& MIGRATIONS)"),
            "{out}"
        );
        assert!(out.starts_with("# [should_panic]"), "{out}");
    }

    #[test]
    fn misuse_is_a_compile_error_saying_what_to_do() {
        for (attr, item, says) in [
            ("", "fn t() {}", "exactly one parameter"),
            (
                "",
                "fn t(a: TestDatabase, b: TestDatabase) {}",
                "exactly one parameter",
            ),
            ("", "fn t(db: String) {}", "not `String`"),
            ("", "fn t<T>(db: TestDatabase) {}", "cannot be generic"),
            (
                "",
                "#[tokio::test] async fn t(db: TestDatabase) {}",
                "remove this attribute",
            ),
            (
                "migration = M",
                "fn t(db: TestDatabase) {}",
                "unknown option `migration`",
            ),
            (
                "migrations = M, x",
                "fn t(db: TestDatabase) {}",
                "unexpected tokens",
            ),
        ] {
            let out = expand(attr, item);
            assert!(out.contains("compile_error"), "{item}: {out}");
            assert!(out.contains(says), "{item}: expected {says:?} in {out}");
        }
    }
}
