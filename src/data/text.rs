//! Vietnamese text helpers shared by the tools, synth and its checks: how the
//! assistant writes money and dates, and the noise customers type (no diacritics,
//! teen code, typos). Folding for matching is the conversation core's
//! ([`crate::conversation::text`]).

use rand::seq::IndexedRandom;
use rand::Rng;

/// `text` with its first letter upper-cased.
pub fn capitalize(text: &str) -> String {
    let mut c = text.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `text` with its first letter lower-cased.
pub fn lower_first(text: &str) -> String {
    let mut c = text.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Money as Vietnamese shops write it: `249000` -> `249.000đ`.
pub fn vnd(amount: i64) -> String {
    let digits = amount.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    format!("{}{out}đ", if amount < 0 { "-" } else { "" })
}

/// `2025-06-23` -> `23/06/2025`; other text unchanged.
pub fn date_vn(iso: &str) -> String {
    let parts: Vec<&str> = iso.split('-').collect();
    match parts.as_slice() {
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() >= 2 => format!("{}/{m}/{y}", &d[..2]),
        _ => iso.to_string(),
    }
}

/// Teen-code and chat abbreviations customers use, applied word by word
/// (longest phrases first).
const TEEN_CODE: [(&str, &str); 22] = [
    ("không", "k"),
    ("không", "ko"),
    ("được", "dc"),
    ("được", "đc"),
    ("vậy", "v"),
    ("vậy", "z"),
    ("bao nhiêu", "bn"),
    ("bao nhiêu", "bnhiu"),
    ("biết", "bít"),
    ("rồi", "r"),
    ("gì", "j"),
    ("em", "e"),
    ("anh", "a"),
    ("chị", "c"),
    ("mình", "mk"),
    ("nhiêu", "nhiu"),
    ("với", "vs"),
    ("quá", "wá"),
    ("như", "nhu"),
    ("hàng", "hàg"),
    ("ship", "síp"),
    ("order", "od"),
];

/// Rewrites `text` in teen code: each abbreviable word is replaced with
/// probability `p`.
pub fn teen_code(text: &str, p: f64, rng: &mut impl Rng) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        if i + 1 < words.len() && words[i] == "bao" && words[i + 1].starts_with("nhiêu") && rng.random_bool(p) {
            let rest = &words[i + 1]["nhiêu".len()..];
            out.push(format!("{}{rest}", if rng.random_bool(0.5) { "bn" } else { "bnhiu" }));
            i += 2;
            continue;
        }
        let w = words[i];
        let core = w.trim_end_matches(|c: char| c.is_ascii_punctuation());
        let tail = &w[core.len()..];
        let options: Vec<&str> = TEEN_CODE.iter().filter(|(from, _)| *from == core).map(|(_, to)| *to).collect();
        match options.choose(rng) {
            Some(to) if rng.random_bool(p) => out.push(format!("{to}{tail}")),
            _ => out.push(w.to_string()),
        }
        i += 1;
    }
    out.join(" ")
}

/// Adds `n` typos (a swapped, dropped or doubled letter) to words of at least four
/// letters that hold no digit, so order ids, codes and sizes stay intact.
pub fn typos(text: &str, n: usize, rng: &mut impl Rng) -> String {
    let mut words: Vec<String> = text.split(' ').map(String::from).collect();
    for _ in 0..n {
        let candidates: Vec<usize> = (0..words.len())
            .filter(|&i| {
                let w = &words[i];
                w.chars().count() >= 4 && w.chars().all(|c| c.is_alphabetic()) && !w.chars().any(|c| c.is_uppercase())
            })
            .collect();
        let Some(&i) = candidates.choose(rng) else { break };
        let mut chars: Vec<char> = words[i].chars().collect();
        let j = rng.random_range(1..chars.len() - 1);
        match rng.random_range(0..3) {
            0 => chars.swap(j, j + 1),
            1 => {
                chars.remove(j);
            }
            _ => chars.insert(j, chars[j]),
        }
        words[i] = chars.into_iter().collect();
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn formats_money_and_dates() {
        assert_eq!(vnd(249000), "249.000đ");
        assert_eq!(vnd(1490000), "1.490.000đ");
        assert_eq!(vnd(0), "0đ");
        assert_eq!(date_vn("2025-06-23"), "23/06/2025");
    }

    #[test]
    fn noise_keeps_codes_and_changes_words() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let t = "Đơn DH250011 của em không biết bao nhiêu ngày được giao vậy";
        let teen = teen_code(t, 1.0, &mut rng);
        assert!(teen.contains("DH250011") && !teen.contains("không") && !teen.contains("bao nhiêu"), "{teen}");
        let typo = typos(t, 2, &mut rng);
        assert!(typo.contains("DH250011") && typo != t, "{typo}");
    }
}
