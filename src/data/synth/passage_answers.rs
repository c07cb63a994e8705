//! Questions answered from passages that retrieval put before them, with no tool
//! call: a product's price, material, sizes or colours from its catalog text,
//! a policy from its sections. The passages are the documents `embed-catalog` indexes
//! ([`crate::rag::chunk`]) under the heading `serve` writes them with
//! ([`crate::data::passages`]), the answer among one or two others, so the model learns
//! to read the one that answers and leave the rest.

use std::collections::HashSet;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::json;

use super::convo::{fill, Convo};
use super::policy::POLICY_QA;
use crate::data::grounding::ungrounded;
use crate::data::passages::{with_context, CONTEXT_HEADING};
use crate::data::product::Product;
use crate::data::store::Store;
use crate::data::text::{capitalize, vnd};
use crate::rag::chunk::{policy_documents, product_documents, ChunkOptions};
use crate::rag::ingest::split_markdown;
use crate::rag::text::folded_syllables;
use crate::Result;

/// (question, answer) templates by the product fact asked for.
const ASK_PRODUCT: [(&str, &str); 8] = [
    ("Cho em hỏi {name} bán giá nhiêu ạ?", "Dạ {name} có giá {price} ạ. {Kh} cần em tư vấn thêm size hay màu không ạ?"),
    ("{name} hiện bao nhiêu tiền vậy ad?", "Dạ {name} hiện có giá {price} ạ."),
    ("shop ơi {name} làm bằng chất liệu gì vậy", "Dạ {name} được làm từ chất liệu {material} ạ, giá {price} ạ."),
    (
        "{name} vải gì vậy shop, mặc có nóng không?",
        "Dạ {name} là chất liệu {material} ạ. {Kh} cần em kiểm tra size nào không ạ?",
    ),
    ("{name} có những size nào ạ?", "Dạ {name} có các size {sizes} ạ, giá {price} ạ."),
    ("Mẫu {name} có size nào vậy shop?", "Dạ mẫu {name} bên em có size {sizes} ạ."),
    ("{name} có mấy màu vậy shop?", "Dạ {name} có các màu {colors} ạ. {Kh} thích màu nào để em kiểm tra giúp ạ?"),
    ("Cho mình xem {name} có màu gì với giá bao nhiêu", "Dạ {name} có các màu {colors}, giá {price} ạ."),
];

/// The index's text of a product (its first document).
fn product_passage(p: &Product) -> String {
    product_documents(p, &ChunkOptions::default()).swap_remove(0).text
}

/// The index's documents of the policy on `topic`.
fn policy_passages(store: &Store, topic: &str) -> Vec<String> {
    let Some(policy) = store.policies.iter().find(|p| p.topic == topic) else { return Vec::new() };
    split_markdown(Path::new(&format!("{topic}.md")), &policy.text)
        .iter()
        .flat_map(|s| policy_documents(s, &ChunkOptions::default()))
        .map(|d| d.text)
        .collect()
}

/// A question about one product, answered from its catalog text beside another
/// product's.
pub fn product(c: &mut Convo, store: &Store) -> Result<()> {
    let i = c.rng.random_range(0..store.products.len());
    let p = &store.products[i];
    let mut chosen = vec![i];
    while chosen.len() < 2.min(store.products.len()) {
        let other = c.rng.random_range(0..store.products.len());
        if !chosen.contains(&other) {
            chosen.push(other);
        }
    }
    let mut passages: Vec<String> = chosen.iter().map(|&k| product_passage(&store.products[k])).collect();
    passages.shuffle(c.rng);
    c.maybe_greet();
    let (ask, answer) = ASK_PRODUCT[c.rng.random_range(0..ASK_PRODUCT.len())];
    let (price, sizes, colors) = (vnd(p.price_vnd as i64), p.sizes.join(", "), p.colors.join(", "));
    let vars = [
        ("name", p.name.as_str()),
        ("price", &price),
        ("material", &p.material),
        ("sizes", &sizes),
        ("colors", &colors),
    ];
    c.user_with_passages(&fill(ask, &vars), &passages);
    c.say(&fill(answer, &vars));
    c.maybe_thank();
    Ok(())
}

/// A policy question answered from the sections of that policy that share the most
/// words with its answer, as many as support every figure in it, maybe beside a
/// section of another policy.
pub fn policy(c: &mut Convo, store: &Store) -> Result<()> {
    let (topic, questions, answers) = POLICY_QA[c.rng.random_range(0..POLICY_QA.len())];
    let question = c.pick(questions);
    let answer = fill(c.pick(answers), &[("kh", c.kh()), ("Kh", &capitalize(c.kh()))]);
    let words: HashSet<String> = folded_syllables(&answer).into_iter().collect();
    let mut sections = policy_passages(store, topic);
    // Stable: ties keep the policy's order.
    let shared = |t: &String| folded_syllables(t).into_iter().collect::<HashSet<_>>().intersection(&words).count();
    sections.sort_by_key(|t| std::cmp::Reverse(shared(t)));
    let grounded = |passages: &[String]| {
        let question = with_context("", CONTEXT_HEADING, passages);
        ungrounded(&[json!({"role": "user", "content": question}), json!({"role": "assistant", "content": answer})])
            .is_empty()
    };
    let mut sections = sections.into_iter();
    let mut passages: Vec<String> = sections.next().into_iter().collect();
    for section in sections {
        if grounded(&passages) {
            break;
        }
        passages.push(section);
    }
    if c.rng.random_bool(0.5) {
        let others: Vec<&str> = POLICY_QA.iter().map(|(t, _, _)| *t).filter(|t| *t != topic).collect();
        let pool = policy_passages(store, others[c.rng.random_range(0..others.len())]);
        if !pool.is_empty() {
            passages.push(pool[c.rng.random_range(0..pool.len())].clone());
        }
    }
    passages.shuffle(c.rng);
    c.maybe_greet();
    c.user_with_passages(question, &passages);
    c.say(&answer);
    c.maybe_thank();
    Ok(())
}
