//! Text people read: names and notes shown to operators must look like what they are. Free
//! text is stored in Unicode NFC; control characters, bidirectional controls (which reorder what
//! an operator sees, as in `U+202E`) and invisible zero-width characters are refused. Names
//! also get a folded form (case, spacing, punctuation and confusable characters under UTS #39's
//! skeleton) so that `Acme`, `ACME, ` and a Cyrillic `Асme` compare equal when looking for
//! duplicates. NUL is refused everywhere a request can carry text ([`nul_path`]).

use unicode_normalization::UnicodeNormalization;

use super::Invalid;

/// Characters that change the display order of the text around them.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Characters that show nothing but make two texts differ.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
    )
}

/// Checks free text an operator will read: trimmed, NFC, `1..=max_chars` characters (empty
/// allowed when `required` is false), and no control, bidirectional-control or invisible
/// character. `field` names the field in the refusal.
pub fn display_text(
    field: &str,
    text: &str,
    max_chars: usize,
    required: bool,
) -> Result<String, Invalid> {
    let normalized: String = text.trim().nfc().collect();
    if normalized.is_empty() && required {
        return Err(Invalid::new(
            "required",
            format!("{field} must not be empty"),
        ));
    }
    if normalized.chars().count() > max_chars {
        return Err(Invalid::new(
            "too_long",
            format!("{field} must be at most {max_chars} characters"),
        ));
    }
    if let Some(c) = normalized.chars().find(|c| c.is_control()) {
        return Err(Invalid::new(
            "invalid_characters",
            format!(
                "{field} must not contain control characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    if let Some(c) = normalized.chars().find(|c| is_bidi_control(*c)) {
        return Err(Invalid::new(
            "invalid_characters",
            format!(
                "{field} must not contain bidirectional control characters (found U+{:04X}), which change how the text is displayed",
                u32::from(c)
            ),
        ));
    }
    if let Some(c) = normalized.chars().find(|c| is_invisible(*c)) {
        return Err(Invalid::new(
            "invalid_characters",
            format!(
                "{field} must not contain invisible characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    Ok(normalized)
}

/// `s` cut to its first `max_chars` characters, with `...` when something was cut: how an
/// error quotes what a caller sent without echoing a flood back.
pub fn shorten(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        None => s.to_owned(),
        Some((at, _)) => format!("{}...", &s[..at]),
    }
}

/// The form of a name used to find duplicates: compatibility-normalised, confusable characters
/// mapped to their UTS #39 skeleton, lower-cased, and only letters and digits kept. Equal folded
/// forms mean names a person could mistake for one another.
pub fn fold_name(name: &str) -> String {
    let step = |s: &str| -> String {
        let lower: String = s.nfkc().collect::<String>().to_lowercase();
        let skeleton: String = unicode_security::skeleton(&lower).collect();
        skeleton
            .nfkc()
            .collect::<String>()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect()
    };
    // A skeleton can itself hold characters that fold further: repeat until nothing changes
    // (two or three rounds in practice).
    let mut folded = step(name);
    for _ in 0..4 {
        let again = step(&folded);
        if again == folded {
            break;
        }
        folded = again;
    }
    folded
}

/// Words that name a company's legal form, not the company: dropped from the end of a name
/// before it is compared (`Acme Corp.`, `ACME, Inc` and `Acme GmbH` are one company's names).
const LEGAL_SUFFIXES: &[&str] = &[
    "ab",
    "ag",
    "as",
    "asa",
    "bv",
    "bvba",
    "co",
    "company",
    "corp",
    "corporation",
    "cv",
    "eg",
    "ev",
    "gbr",
    "gmbh",
    "inc",
    "incorporated",
    "kft",
    "kg",
    "kk",
    "lc",
    "limited",
    "llc",
    "llp",
    "lp",
    "ltd",
    "ltda",
    "mbh",
    "nv",
    "oy",
    "oyj",
    "plc",
    "pllc",
    "pte",
    "pty",
    "pvt",
    "sa",
    "sarl",
    "sas",
    "sl",
    "spa",
    "sro",
    "srl",
    "ug",
];

/// The key two company names are duplicates by: the name's words with the legal forms at its
/// end dropped (`Acme Holdings Pty Ltd` is `Acme Holdings`), then [`fold_name`]d. A name that is
/// nothing but legal forms keeps them.
pub fn company_key(name: &str) -> String {
    let lower: String = name.nfkc().collect::<String>().to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut end = words.len();
    while end > 1 && LEGAL_SUFFIXES.contains(&words[end - 1]) {
        end -= 1;
    }
    fold_name(&words[..end].join(" "))
}

/// A name's ASCII letters and digits, lower case, in words separated by one space: accents
/// dropped (`Café Zürich` is `cafe zurich`), anything else a separator.
pub fn to_ascii_words(name: &str) -> String {
    let plain: String = name
        .nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase();
    plain
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The key of the mailbox an address reaches, for limits per address: lower case, without a
/// `+tag`, and for Gmail without the dots it ignores (`A.nn+x@GMail.com` is `ann@gmail.com`).
pub fn mailbox_key(email: &str) -> String {
    let lower = email.trim().to_lowercase();
    let Some((local, domain)) = lower.rsplit_once('@') else {
        return lower;
    };
    let local = local.split('+').next().unwrap_or(local);
    let local = match domain {
        "gmail.com" | "googlemail.com" => local.replace('.', ""),
        _ => local.to_owned(),
    };
    format!("{local}@{domain}")
}

/// The path (`a.b[0]`; `body` for the top level) of the first string or key in `value` that
/// holds a NUL character.
pub fn nul_path(value: &serde_json::Value) -> Option<String> {
    nul_in(value, "")
}

fn nul_in(value: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    let join = |key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(if at.is_empty() {
            "body".into()
        } else {
            at.to_owned()
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_in(v, &format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join(&k.replace('\0', "\\u0000")))
            } else {
                nul_in(v, &join(k))
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_mailbox_share_a_key() {
        assert_eq!(mailbox_key("A.nn+promo@GMail.com"), "ann@gmail.com");
        assert_eq!(mailbox_key("Hal+x@Example.ORG"), "hal@example.org");
        assert_eq!(mailbox_key("h.al@example.org"), "h.al@example.org");
    }

    #[test]
    fn company_keys_fold_case_spacing_punctuation_legal_forms_and_confusables() {
        let acme = company_key("Acme");
        for same in [
            "ACME",
            "  acme ",
            "Acme, Inc.",
            "Acme Corp",
            "Acme GmbH",
            "A.C.M.E.",
            "Acme Pty Ltd",
            "\u{0410}cme",
            "Ac\u{200b}me",
        ] {
            assert_eq!(company_key(same), acme, "{same}");
        }
        assert_ne!(company_key("Acme Holdings"), acme);
        assert_ne!(company_key("Acme Analytics Ltd"), acme);
        assert_eq!(
            company_key("Ltd"),
            fold_name("ltd"),
            "a name of legal forms only keeps them"
        );
        assert_eq!(company_key("Co Ltd"), fold_name("co"));
    }

    use proptest::prelude::*;

    #[test]
    fn deceptive_characters_are_refused_with_their_code_point() {
        for (text, found) in [
            ("Acme\u{202E}gnp.exe", "U+202E"),
            ("Ac\u{200B}me", "U+200B"),
            ("\u{2066}Acme", "U+2066"),
            ("Acme\u{FEFF}", "U+FEFF"),
            ("Ac\0me", "U+0000"),
            ("Ac\nme", "U+000A"),
        ] {
            let e = display_text("customer_name", text, 200, true).unwrap_err();
            assert_eq!(e.code, "invalid_characters", "{text:?}");
            assert!(e.message.contains(found), "{}", e.message);
        }
    }

    #[test]
    fn text_is_stored_trimmed_and_composed() {
        assert_eq!(
            display_text("customer_name", "  Cafe\u{0301} Ltd ", 200, true).unwrap(),
            "Caf\u{00E9} Ltd"
        );
        assert_eq!(
            display_text("customer_name", " ", 200, true)
                .unwrap_err()
                .code,
            "required"
        );
        assert_eq!(display_text("note", "", 200, false).unwrap(), "");
        assert_eq!(
            display_text("customer_name", &"x".repeat(201), 200, true)
                .unwrap_err()
                .code,
            "too_long"
        );
    }

    #[test]
    fn lookalike_names_fold_to_one_form() {
        let plain = fold_name("Acme Corp");
        for lookalike in [
            "ACME corp",
            "Acme, Corp.",
            "\u{0410}cme Corp", // Cyrillic A
            "Acm\u{0435} Corp", // Cyrillic e
            "\u{FF21}cme Corp", // fullwidth A
            "Acme  Corp",
        ] {
            assert_eq!(fold_name(lookalike), plain, "{lookalike}");
        }
        assert_ne!(fold_name("Acne Corp"), plain);
    }

    #[test]
    fn nul_is_found_wherever_it_is() {
        let v = serde_json::json!({"a": {"b": ["x", "y\u{0}"]}, "c": "ok"});
        assert_eq!(nul_path(&v).as_deref(), Some("a.b[1]"));
        assert_eq!(
            nul_path(&serde_json::json!("\u{0}")).as_deref(),
            Some("body")
        );
        assert_eq!(
            nul_path(&serde_json::json!({"k\u{0}": 1})).as_deref(),
            Some("k\\u0000")
        );
        assert_eq!(nul_path(&serde_json::json!({"a": [1, "b"]})), None);
    }

    proptest! {
        #[test]
        fn accepted_text_never_holds_a_deceptive_character(s in "\\PC{0,40}") {
            if let Ok(t) = display_text("f", &s, 200, false) {
                prop_assert!(!t.chars().any(|c| c.is_control() || is_bidi_control(c) || is_invisible(c)));
                let renormalized: String = t.nfc().collect();
                prop_assert_eq!(renormalized, t.clone());
            }
        }

        #[test]
        fn folding_is_idempotent(s in "\\PC{0,40}") {
            let once = fold_name(&s);
            prop_assert_eq!(fold_name(&once), once.clone());
        }
    }
}
