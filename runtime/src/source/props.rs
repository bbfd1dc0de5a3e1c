//! Property tests: the parsers of untrusted input never panic, and never accept what they
//! should refuse.

use proptest::prelude::*;

use super::{directive, name, sections};
use crate::checksum::{normalise, Checksum};
use crate::Version;

proptest! {
    #[test]
    fn file_names_never_panic_and_accepted_ones_round_trip(stem in "\\PC{0,40}") {
        let file = format!("{stem}.sql");
        if let Ok(parsed) = name::parse_file_name(&file) {
            // Re-rendering what was accepted gives a name that parses to the same thing: the
            // parser kept every meaningful character.
            let (version, name, rendered) = match &parsed {
                name::FileName::Plain(v, n) => (*v, n.clone(), stem.clone()),
                name::FileName::Up(v, n) => (*v, n.clone(), stem[..stem.len() - 3].to_owned()),
                name::FileName::Down(v, n) => (*v, n.clone(), stem[..stem.len() - 5].to_owned()),
                name::FileName::Flyway(v, n) => (*v, n.clone(), stem.clone()),
                name::FileName::Pop(p) => {
                    // The name is the part before the dialect and flags.
                    let rendered = stem[..stem.find(&format!("_{}.", p.name)).unwrap_or(0) + 1 + p.name.len()].to_owned();
                    (p.version, p.name.clone(), rendered)
                }
            };
            // Only a version alone (`1677078479.sql`) has an empty name.
            prop_assert!(!name.is_empty() || rendered.bytes().all(|b| b.is_ascii_digit()));
            prop_assert!(rendered.ends_with(&name));
            if let name::FileName::Flyway(..) = parsed {
                prop_assert!(stem.starts_with(['V', 'v']));
            } else {
                let digits: String = rendered.chars().take_while(char::is_ascii_digit).collect();
                prop_assert_eq!(digits.parse::<Version>().ok(), Some(version));
                if !name.is_empty() {
                    prop_assert_eq!(&rendered[digits.len()..digits.len() + 1], "_");
                }
            }
        }
    }

    #[test]
    fn versions_round_trip(parts in proptest::collection::vec("[0-9]{1,30}", 1..=6)) {
        let text = parts.join(".");
        let v: Version = text.parse().unwrap();
        prop_assert_eq!(v.to_string().parse::<Version>().unwrap(), v);
    }

    #[test]
    fn version_order_is_part_by_part(a in proptest::collection::vec(prop_oneof![0u128..3, 18446744073709551610u128..18446744073709551620, any::<u128>()], 1..=5),
                                     b in proptest::collection::vec(prop_oneof![0u128..3, 18446744073709551610u128..18446744073709551620, any::<u128>()], 1..=5)) {
        // Numbers up to 39 digits, compared as numbers, against the text comparison.
        let pad = |p: &Vec<u128>| { let mut x = p.clone(); x.resize(5, 0); x };
        let va: Version = a.iter().map(u128::to_string).collect::<Vec<_>>().join(".").parse().unwrap();
        let vb: Version = b.iter().map(u128::to_string).collect::<Vec<_>>().join(".").parse().unwrap();
        prop_assert_eq!(va.cmp(&vb), pad(&a).cmp(&pad(&b)));
    }

    #[test]
    fn checksums_are_line_ending_and_bom_blind(text in "[a-z \\n\\r;é]{0,60}") {
        // One pass: `\r\r\n` becomes `\r\n` (a lone CR is content), so normalising is not
        // idempotent, and needs not be; what matters is that a checkout's line endings and a
        // BOM do not change the checksum.
        prop_assert!(normalise(&text).len() <= text.len());
        let lf: String = text.replace('\r', "");
        let crlf = lf.replace('\n', "\r\n");
        prop_assert_eq!(Checksum::of(&lf), Checksum::of(&crlf));
        prop_assert_eq!(Checksum::of(&lf), Checksum::of(&format!("\u{feff}{crlf}")));
    }

    #[test]
    fn directives_never_panic(text in "(\\PC|\\n|-- preflight:|allow\\(|\\)){0,80}") {
        let (_, errors) = directive::parse(&text, None);
        for e in errors {
            prop_assert!(e.at.end <= text.len());
            prop_assert!(text.is_char_boundary(e.at.start));
        }
    }

    #[test]
    fn goose_sections_stay_inside_the_file(
        text in "(\\PC|\\n|-- \\+goose (Up|Down|StatementBegin|StatementEnd|NO TRANSACTION)\\n){0,80}"
    ) {
        if let Ok(g) = sections::parse(&text, sections::Marker::Goose) {
            prop_assert!(g.up.start <= g.up.end && g.up.end <= text.len());
            prop_assert!(text.is_char_boundary(g.up.start) && text.is_char_boundary(g.up.end));
            if let Some(d) = g.down {
                prop_assert!(g.up.end <= d.start && d.end == text.len());
            }
        }
    }
}
