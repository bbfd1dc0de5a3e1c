//! The expansion of `preflight::embed!`.

use std::path::{Path, PathBuf};

use proc_macro2::{Literal, Span as RustSpan, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::{Ident, Lit, LitStr, Token};

use crate::{check_dir, Checked, CheckedBody, Layout, Options, Report};
use preflight_runtime::{Kind, Version};

/// Expands `embed!("dir", option = value, ...)` into an expression of type
/// `preflight::Migrations` (usable in a `static`), or into a `compile_error!` listing every
/// problem of the directory.
///
/// The directory is relative to the `CARGO_MANIFEST_DIR` of the crate being compiled. Options:
/// `dialect = "postgres" | "sqlite"` (`sqlite` needs the `sqlite` feature; in pop's layout it
/// also picks the dialect's files), `names = "V{version}.{name}.{direction}.sql"` (a declared
/// naming pattern), `lints = "warn" | "deny" | "allow"`, `lint_since = 42` (lint only versions
/// above 42), `allow = "rule, group, ..."` (rules off for the whole project), `enable = "style,
/// ..."` (opt-in rules on), `set = "auth"` (the set's name in the history table; default: the
/// embedding crate's package name, `CARGO_PKG_NAME`). Each file is embedded with
/// `include_str!`, so editing it re-expands the macro; a *new* file is noticed when the crate's
/// `build.rs` calls `preflight::build::watch`.
pub fn expand(input: TokenStream) -> TokenStream {
    match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(dir) => expand_in(
            input,
            Path::new(&dir),
            std::env::var("CARGO_PKG_NAME").ok().as_deref(),
        ),
        None => {
            let message = "preflight::embed!: CARGO_MANIFEST_DIR is not set; the macro must be \
                           compiled by cargo, which sets it";
            quote!(::core::compile_error!(#message))
        }
    }
}

/// [`expand`] with the crate directory and package name given (testable without touching the
/// environment).
pub(crate) fn expand_in(
    input: TokenStream,
    manifest_dir: &Path,
    package: Option<&str>,
) -> TokenStream {
    let input: Input = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let set = match (&input.set, package) {
        (Some(set), _) => set.value(),
        (None, Some(package)) => package.to_owned(),
        (None, None) => preflight_runtime::DEFAULT_SET.to_owned(),
    };
    if let Err(e) = preflight_runtime::composition::check_set_name(&set) {
        let span = input.set.as_ref().map_or(input.path.span(), LitStr::span);
        let message = format!("preflight::embed!: {e}");
        return quote_spanned!(span=> ::core::compile_error!(#message));
    }
    let shown = input.path.value();
    let dir = manifest_dir.join(&shown);
    let checked = check_dir(&dir, &shown, &input.options).and_then(|checked| {
        match checked.requirement_errors(&set) {
            errors if errors.is_empty() => Ok(checked),
            errors => Err(errors),
        }
    });
    match checked {
        Ok(checked) => generate(checked, &set),
        Err(errors) => {
            let message = format!(
                "preflight::embed!(\"{shown}\"): {} problem{} in the migration directory:\n\n{}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                Report(&errors)
            );
            quote_spanned!(input.path.span()=> ::core::compile_error!(#message))
        }
    }
}

/// The macro's arguments: the directory, then `key = value` options.
struct Input {
    path: LitStr,
    options: Options,
    /// `set = "..."`: the set's name, when given.
    set: Option<LitStr>,
}

impl Parse for Input {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(input.error(
                "expected the migration directory, relative to Cargo.toml: `embed!(\"migrations\")`",
            ));
        }
        let path: LitStr = input.parse()?;
        let mut options = Options::default();
        let mut set = None;
        let mut seen: Vec<String> = Vec::new();
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            let value: Lit = input.parse()?;
            let name = key.to_string();
            if seen.contains(&name) {
                return Err(syn::Error::new(
                    key.span(),
                    format!("option `{name}` given twice"),
                ));
            }
            seen.push(name.clone());
            options = match name.as_str() {
                "dialect" => options.dialect(
                    string(&value, "dialect")?
                        .parse()
                        .map_err(|e: String| syn::Error::new(value.span(), e))?,
                ),
                "lints" => options.lints(
                    string(&value, "lints")?
                        .parse()
                        .map_err(|e: String| syn::Error::new(value.span(), e))?,
                ),
                "lint_since" => options.lint_since(version(&value)?),
                "set" => {
                    string(&value, "set")?;
                    if let Lit::Str(s) = value {
                        set = Some(s);
                    }
                    options
                }
                "names" => options.names(
                    string(&value, "names")?
                        .parse()
                        .map_err(|e: String| syn::Error::new(value.span(), e))?,
                ),
                "allow" => options
                    .allow(&string(&value, "allow")?)
                    .map_err(|e| syn::Error::new(value.span(), e))?,
                "enable" => options
                    .enable(&string(&value, "enable")?)
                    .map_err(|e| syn::Error::new(value.span(), e))?,
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown option `{name}`: the options are `dialect = \"postgres\"`, \
                             `names = \"{{version}}_{{name}}.sql\"`, \
                             `lints = \"warn\" | \"deny\" | \"allow\"`, `lint_since = <version>`, \
                             `allow = \"rule, ...\"`, `enable = \"rule, ...\"` and \
                             `set = \"<name>\"`"
                        ),
                    ))
                }
            };
        }
        Ok(Input { path, options, set })
    }
}

fn string(value: &Lit, option: &str) -> syn::Result<String> {
    match value {
        Lit::Str(s) => Ok(s.value()),
        _ => Err(syn::Error::new(
            value.span(),
            format!("`{option}` takes a string, e.g. `{option} = \"...\"`"),
        )),
    }
}

fn version(value: &Lit) -> syn::Result<Version> {
    let text =
        match value {
            Lit::Int(i) if i.suffix().is_empty() => i.base10_digits().to_owned(),
            Lit::Str(s) => s.value(),
            _ => return Err(syn::Error::new(
                value.span(),
                "`lint_since` takes a version, e.g. `lint_since = 42` or `lint_since = \"1.2\"`",
            )),
        };
    text.parse::<Version>()
        .map_err(|e| syn::Error::new(value.span(), format!("`lint_since`: {e}")))
}

/// The `Migrations` expression for a checked directory, as set `set_name`.
fn generate(checked: Checked, set_name: &str) -> TokenStream {
    let warnings: Vec<TokenStream> = checked
        .warnings()
        .iter()
        .chain(checked.notes())
        .map(warning)
        .collect();
    let dialect = checked.dialect().name();
    let warning_texts: Vec<String> = checked.warnings().iter().map(ToString::to_string).collect();
    let mut tracked: Vec<TokenStream> = Vec::new();
    if checked.layout() == Some(Layout::Diesel) {
        // metadata.toml decides the kind but is not embedded: include it so editing it
        // re-expands the macro too.
        for m in checked.migrations() {
            if let Some(metadata) = m.up().path().parent().map(|d| d.join("metadata.toml")) {
                if metadata.is_file() {
                    let path = path_literal(&metadata);
                    tracked.push(quote!(
                        const _: &[u8] = ::core::include_bytes!(#path);
                    ));
                }
            }
        }
    }
    let bodies: Vec<(TokenStream, Option<TokenStream>)> = checked
        .migrations()
        .iter()
        .map(|m| (body(m.up()), m.down().map(body)))
        .collect();
    let set = checked.into_migrations();
    // Each list of requirements is a `const` item of its own, so that it is 'static (a borrow
    // of a temporary passed to a function would not be).
    let mut requirement_lists: Vec<TokenStream> = Vec::new();
    let entries: Vec<TokenStream> = set
        .iter()
        .zip(bodies)
        .enumerate()
        .map(|(i, (m, (up, down)))| {
            let version = version_tokens(m.version());
            let name = m.name();
            let path = m.path();
            let down = match down {
                Some(d) => quote!(::core::option::Option::Some(#d)),
                None => quote!(::core::option::Option::None),
            };
            // Byte strings rather than arrays of 32 literals: one token each, which matters to the
            // compiler with a thousand migrations.
            let checksum = Literal::byte_string(m.checksum().as_bytes());
            let chain = Literal::byte_string(m.chain().as_bytes());
            let requires: Vec<TokenStream> = m
                .requires()
                .iter()
                .map(|r| {
                    let set = r.set();
                    let version = version_tokens(r.version());
                    quote!(::preflight::Requirement::__embedded(#set, #version))
                })
                .collect();
            if requires.is_empty() {
                return quote! {
                    ::preflight::Migration::__embedded(
                        #version,
                        #name,
                        #path,
                        #up,
                        #down,
                        ::preflight::Checksum::from_bytes(*#checksum),
                        ::preflight::Checksum::from_bytes(*#chain),
                    )
                };
            }
            let list = quote::format_ident!("__PREFLIGHT_REQUIRES_{}", i);
            requirement_lists.push(quote! {
                const #list: &[::preflight::Requirement] = &[#(#requires),*];
            });
            quote! {
                ::preflight::Migration::__embedded_requiring(
                    #version,
                    #name,
                    #path,
                    #up,
                    #down,
                    ::preflight::Checksum::from_bytes(*#checksum),
                    ::preflight::Checksum::from_bytes(*#chain),
                    #list,
                )
            }
        })
        .collect();
    quote! {
        {
            #(#tracked)*
            #(#warnings)*
            #(#requirement_lists)*
            // A `const` item so the array is lifetime-extended to 'static (a temporary passed to
            // a function would not be).
            const __PREFLIGHT_MIGRATIONS: &[::preflight::Migration] = &[#(#entries),*];
            ::preflight::Migrations::__embedded_named(
                __PREFLIGHT_MIGRATIONS,
                #set_name,
                #dialect,
                &[#(#warning_texts),*],
            )
        }
    }
}

/// A version as the expression `embed!` writes (a `u64`, or its canonical text).
fn version_tokens(v: Version) -> TokenStream {
    match v.__canonical_text() {
        None => {
            let n = v.as_u64().unwrap_or_default();
            quote!(::preflight::Version::new(#n))
        }
        Some(text) => quote!(::preflight::Version::__canonical(#text)),
    }
}

fn body(b: &CheckedBody) -> TokenStream {
    let path = path_literal(b.path());
    let spans = b.statements().iter().map(|s| {
        let r = s.range();
        let (start, end) = (r.start as u32, r.end as u32);
        match s.commit_at() {
            Some(commit) => {
                let commit = commit as u32;
                quote!(::preflight::Span::block(#start, #commit, #end))
            }
            None => quote!(::preflight::Span::new(#start, #end)),
        }
    });
    let kind = match b.kind() {
        Kind::Transactional => quote!(::preflight::Kind::Transactional),
        Kind::NoTransaction => quote!(::preflight::Kind::NoTransaction),
        Kind::Script => quote!(::preflight::Kind::Script),
    };
    let body = quote!(::preflight::Body::new(::core::include_str!(#path), &[#(#spans),*], #kind));
    let t = b.timeouts();
    if t == preflight_runtime::Timeouts::NONE {
        return body;
    }
    let (lock, statement) = (timeout(t.lock), timeout(t.statement));
    quote!(#body.with_timeouts(::preflight::Timeouts { lock: #lock, statement: #statement }))
}

/// A directive's limit as a constant expression.
fn timeout(t: Option<preflight_runtime::Timeout>) -> TokenStream {
    match t {
        None => quote!(::core::option::Option::None),
        Some(preflight_runtime::Timeout::Off) => {
            quote!(::core::option::Option::Some(::preflight::Timeout::Off))
        }
        Some(preflight_runtime::Timeout::After(d)) => {
            let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            quote!(::core::option::Option::Some(::preflight::Timeout::After(
                ::core::time::Duration::from_millis(#ms)
            )))
        }
    }
}

fn path_literal(path: &Path) -> Literal {
    let absolute: PathBuf = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    Literal::string(&absolute.to_string_lossy())
}

/// A lint finding as a compiler warning: proc macros cannot emit warnings on stable Rust, but a
/// use of a `#[deprecated]` item is one, and its note carries the finding.
fn warning(d: &preflight_runtime::source::Diagnostic) -> TokenStream {
    let rule = d.rule.as_deref().unwrap_or("rule");
    let note = format!(
        "\n{d}\n(accept it for one statement with `-- preflight:allow {rule}` on the line before \
         it, for the file with `-- preflight:allow-file {rule}`, for the project with \
         `embed!(.., allow = \"{rule}\")`; see LINTS.md)"
    );
    let span = RustSpan::call_site();
    quote_spanned! {span=>
        {
            #[allow(non_camel_case_types)]
            #[deprecated(note = #note)]
            struct preflight_lint;
            let _ = preflight_lint;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn expand_str(dir: &Path, input: &str) -> String {
        let input: TokenStream = input.parse().expect("tokens");
        expand_in(input, dir, Some("my-app")).to_string()
    }

    #[test]
    fn embeds_a_directory() {
        let crate_dir = tempfile::tempdir().unwrap();
        let m = crate_dir.path().join("migrations");
        fs::create_dir(&m).unwrap();
        fs::write(
            m.join("1_users.up.sql"),
            "CREATE TABLE users (id bigint);\nselect 1;\n",
        )
        .unwrap();
        fs::write(m.join("1_users.down.sql"), "DROP TABLE users;").unwrap();
        fs::write(
            m.join("2_idx.up.sql"),
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON users (id);",
        )
        .unwrap();
        let out = expand_str(crate_dir.path(), r#""migrations""#);
        assert!(out.contains("include_str !"), "{out}");
        assert!(
            out.contains(&format!("{:?}", m.join("1_users.up.sql").to_string_lossy())),
            "{out}"
        );
        assert!(out.contains("\"migrations/1_users.up.sql\""), "{out}");
        assert!(out.contains(":: preflight :: Span :: new (0u32 , 31u32) , :: preflight :: Span :: new (32u32 , 41u32)"), "{out}");
        assert!(
            out.contains(":: preflight :: Kind :: NoTransaction"),
            "{out}"
        );
        assert!(out.contains("Option :: Some"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
        // Named after the embedding crate, or as `set = ...` says.
        assert!(
            out.contains("__embedded_named (__PREFLIGHT_MIGRATIONS , \"my-app\" ,"),
            "{out}"
        );
        let auth = expand_str(crate_dir.path(), r#""migrations", set = "auth""#);
        assert!(
            auth.contains("__embedded_named (__PREFLIGHT_MIGRATIONS , \"auth\" ,"),
            "{auth}"
        );
        // Lints are warnings: no index without CONCURRENTLY here, so no warning either.
        assert!(!out.contains("deprecated"), "{out}");
    }

    #[test]
    fn emits_lint_warnings_as_deprecation_notes() {
        let crate_dir = tempfile::tempdir().unwrap();
        let m = crate_dir.path().join("m");
        fs::create_dir(&m).unwrap();
        fs::write(m.join("1_idx.sql"), "CREATE INDEX i ON t (a);").unwrap();
        let out = expand_str(crate_dir.path(), r#""m""#);
        assert!(out.contains("deprecated"), "{out}");
        assert!(out.contains("m/1_idx.sql:1:1: warning:"), "{out}");
        assert!(out.contains("[require-concurrent-index-creation]"), "{out}");
        let quiet = expand_str(crate_dir.path(), r#""m", lints = "allow""#);
        assert!(!quiet.contains("deprecated"), "{quiet}");
        let since = expand_str(crate_dir.path(), r#""m", lint_since = 1"#);
        assert!(!since.contains("deprecated"), "{since}");
        let denied = expand_str(crate_dir.path(), r#""m", lints = "deny""#);
        assert!(denied.contains("compile_error"), "{denied}");
        assert!(denied.contains("m/1_idx.sql:1:1: error:"), "{denied}");
    }

    #[test]
    fn lists_every_problem() {
        let crate_dir = tempfile::tempdir().unwrap();
        let m = crate_dir.path().join("m");
        fs::create_dir(&m).unwrap();
        fs::write(m.join("1_a.sql"), "select 1 from where;").unwrap();
        fs::write(m.join("2_b.sql"), "\\connect x\n").unwrap();
        fs::write(m.join("2_c.sql"), "select 1;").unwrap();
        fs::write(m.join("3-d.sql"), "select 1;").unwrap();
        let out = expand_str(crate_dir.path(), r#""m""#);
        assert!(out.contains("4 problems"), "{out}");
        for needle in [
            "m/1_a.sql:1:",
            "m/2_b.sql:1:1:",
            "duplicate version 2",
            "m/3-d.sql",
        ] {
            assert!(out.contains(needle), "{needle}: {out}");
        }
    }

    #[test]
    fn refuses_bad_options() {
        let dir = tempfile::tempdir().unwrap();
        for (input, message) in [
            ("", "expected the migration directory"),
            (r#""m", colour = "red""#, "unknown option `colour`"),
            (
                r#""m", dialect = "mssql""#,
                "`postgres`, `sqlite` and `mysql`",
            ),
            (r#""m", dialect = "oracle""#, "unknown dialect"),
            (r#""m", lints = "loud""#, "unknown lint level"),
            (r#""m", lints = 1"#, "takes a string"),
            (r#""m", lint_since = "x""#, "lint_since"),
            (r#""m", lints = "warn", lints = "deny""#, "given twice"),
            (r#""m", set = 1"#, "`set` takes a string"),
            (r#""m", set = "a b""#, "set name"),
            (r#""m", set = """#, "set name"),
            ("m", "expected string literal"),
        ] {
            let out = expand_str(dir.path(), input);
            assert!(out.contains("compile_error"), "{input}: {out}");
            assert!(out.contains(message), "{input}: {out}");
        }
    }
}
