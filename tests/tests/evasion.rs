//! Restricted values written the way people paste them, or hidden on purpose:
//! invisible characters, odd separators, look-alike digits, markup, fields the
//! model never reads, repeated keys, split text parts, bodies that cannot be
//! decoded. Whatever the disguise, an Aadhaar or card number never reaches the
//! provider in N. Virginia: the agent sends it to India or refuses it, and the
//! gateway abroad refuses it even when an agent calls it public.

#![allow(clippy::unwrap_used)] // test code

use std::time::Duration;

use residency_proto::{ErrorCode, Frame, Tier};
use residency_tests::*;
use serde_json::json;

const INDIA: [&str; 2] = ["aws:ap-south-1", "aws:ap-south-2"];
const VIRGINIA: &str = "aws:us-east-1";
/// The default fleet's default region: where public data goes.
const DEFAULT_REGION: &str = "aws:us-east-1";

/// An Aadhaar number (Verhoeff valid) and a card number (Visa, Luhn valid).
const AADHAAR: &str = "2345 6789 0124";
const CARD: &str = "4111 1111 1111 1111";

/// Long enough for a stuck request to be a failure, not a hang.
const PER_REQUEST: Duration = Duration::from_secs(20);

/// What the fleet must do with a case.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Decodable: scanned, found restricted; India or a refusal, never abroad.
    Restricted,
    /// Cannot be decoded completely: 400 from the agent, `BadRequest` from a
    /// gateway, and the agent's message contains this word (any case).
    Undecodable(Option<&'static str>),
    /// No sensitive data: reaches the default region like any public request.
    Public,
}

/// One request body.
struct Case {
    name: &'static str,
    /// Under `/v1`.
    path: &'static str,
    body: Vec<u8>,
    expect: Expect,
}

fn case(name: &'static str, path: &'static str, body: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name,
        path,
        body: body.into(),
        expect,
    }
}

/// A chat request whose user message is `content`.
fn chat_of(name: &'static str, content: &str) -> Case {
    case(
        name,
        "/chat/completions",
        chat(content, false),
        Expect::Restricted,
    )
}

/// A chat request whose user message is `content`, already JSON-escaped
/// (so `\u200b` stays an escape in the body).
fn chat_raw(content: &str) -> String {
    format!(r#"{{"model":"mock-gpt","messages":[{{"role":"user","content":"{content}"}}]}}"#)
}

/// A chat request with a plain "hi" message and `extra` top-level fields.
fn chat_with(extra: serde_json::Value) -> String {
    let mut body = json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body.to_string()
}

/// `s` with `sep` between every two adjacent digits.
fn between_digits(s: &str, sep: &str) -> String {
    let mut out = String::new();
    let mut prev_digit = false;
    for c in s.chars() {
        if prev_digit && c.is_ascii_digit() {
            out.push_str(sep);
        }
        out.push(c);
        prev_digit = c.is_ascii_digit();
    }
    out
}

/// `s` with its ASCII digits replaced by the digits of the block whose zero
/// is `zero` (fullwidth, mathematical bold, ...).
fn digits_from(s: &str, zero: u32) -> String {
    s.chars()
        .map(|c| match c.to_digit(10) {
            Some(d) if c.is_ascii_digit() => char::from_u32(zero + d).unwrap(),
            _ => c,
        })
        .collect()
}

/// `s` with its ASCII digits written as circled digits (⓪ ① ... ⑨).
fn circled(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0' => '\u{24EA}',
            '1'..='9' => char::from_u32(0x2460 + (c as u32 - '1' as u32)).unwrap(),
            _ => c,
        })
        .collect()
}

/// Every character of `s` as a JSON `\uXXXX` escape (UTF-16, so astral
/// characters become surrogate pairs).
fn escape_all(s: &str) -> String {
    s.encode_utf16().map(|u| format!("\\u{u:04x}")).collect()
}

/// `inner` inside `depth` nested arrays.
fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Every evasion, one case each.
fn evasions() -> Vec<Case> {
    use Expect::*;
    let a = format!("Aadhaar {AADHAAR}");
    let c = format!("card {CARD}");
    let chat_path = "/chat/completions";
    vec![
        // Invisible characters between digits, raw in the body.
        chat_of("aadhaar_zero_width_space_between_digits", &between_digits(&a, "\u{200B}")),
        chat_of("aadhaar_zero_width_joiner_between_digits", &between_digits(&a, "\u{200D}")),
        chat_of("aadhaar_zero_width_non_joiner_between_digits", &between_digits(&a, "\u{200C}")),
        chat_of("card_soft_hyphen_between_digits", &between_digits(&c, "\u{AD}")),
        chat_of("aadhaar_word_joiner_between_digits", &between_digits(&a, "\u{2060}")),
        chat_of("aadhaar_bom_between_digits", &between_digits(&a, "\u{FEFF}")),
        // ... and as JSON escapes inside the string.
        case(
            "aadhaar_zero_width_space_as_json_escape",
            chat_path,
            chat_raw(&between_digits(&a, "\\u200b")),
            Restricted,
        ),
        case(
            "card_ungrouped_soft_hyphens_as_json_escape",
            chat_path,
            chat_raw("card 4111\\u00ad1111\\u00ad1111\\u00ad1111"),
            Restricted,
        ),
        case(
            "aadhaar_zero_width_space_in_embeddings_input",
            "/embeddings",
            json!({"model": "mock-embed", "input": ["monsoon", between_digits(&a, "\u{200B}")]})
                .to_string(),
            Restricted,
        ),
        // Separators between groups.
        chat_of("aadhaar_no_break_spaces", "Aadhaar 2345\u{A0}6789\u{A0}0124"),
        chat_of("aadhaar_narrow_no_break_spaces", "Aadhaar 2345\u{202F}6789\u{202F}0124"),
        chat_of("aadhaar_dots", "Aadhaar 2345.6789.0124"),
        chat_of("aadhaar_slashes", "Aadhaar 2345/6789/0124"),
        chat_of("aadhaar_underscores", "Aadhaar 2345_6789_0124"),
        chat_of("aadhaar_en_dashes", "Aadhaar 2345\u{2013}6789\u{2013}0124"),
        chat_of("card_em_dashes", "card 4111\u{2014}1111\u{2014}1111\u{2014}1111"),
        chat_of("aadhaar_two_spaces", "Aadhaar 2345  6789  0124"),
        chat_of("card_three_spaces", "card 4111   1111   1111   1111"),
        chat_of("aadhaar_tabs", "Aadhaar 2345\t6789\t0124"),
        chat_of("aadhaar_line_break_between_groups", "Aadhaar 2345\n6789 0124"),
        chat_of("aadhaar_line_break_with_spaces_around", "Aadhaar 2345 \n 6789 0124"),
        chat_of("aadhaar_mixed_separators", "Aadhaar 2345.6789-0124"),
        chat_of("card_mixed_separators", "card 4111 1111-1111.1111"),
        // Look-alike digits.
        chat_of("aadhaar_fullwidth_digits", &digits_from(&a, 0xFF10)),
        chat_of("aadhaar_mathematical_bold_digits", &digits_from(&a, 0x1D7CE)),
        chat_of("card_mathematical_monospace_digits", &digits_from(&c, 0x1D7F6)),
        chat_of("aadhaar_circled_digits", &circled(&a)),
        case(
            "aadhaar_fullwidth_digits_as_json_escapes",
            chat_path,
            chat_raw(&escape_all(&digits_from(&a, 0xFF10))),
            Restricted,
        ),
        case(
            "aadhaar_mathematical_bold_digits_as_surrogate_escapes",
            chat_path,
            chat_raw(&escape_all(&digits_from(&a, 0x1D7CE))),
            Restricted,
        ),
        // Markup and labels glued to the value.
        chat_of("card_glued_acct_hash_label", "Acct#4111111111111111"),
        chat_of("aadhaar_glued_hash_label", "Aadhaar#234567890124"),
        chat_of("aadhaar_glued_colon_label", "Aadhaar:234567890124"),
        chat_of("aadhaar_in_parentheses_after_equals", "uid=(234567890124)"),
        chat_of(
            "card_in_markdown_table_cell",
            "|name|card|\n|---|---|\n|Ravi|4111 1111 1111 1111|",
        ),
        chat_of("aadhaar_in_bold", "**2345 6789 0124**"),
        chat_of("aadhaar_in_underscores", "_2345 6789 0124_"),
        chat_of("aadhaar_in_strikethrough", "~~2345 6789 0124~~"),
        chat_of("card_in_backticks", "`4111 1111 1111 1111`"),
        chat_of("card_after_emoji", "paid \u{1F4B3}4111 1111 1111 1111\u{2705}"),
        // Fields the model does not read, which the provider still receives.
        case(
            "aadhaar_in_message_name",
            chat_path,
            json!({"model": "mock-gpt", "messages": [{"role": "user", "name": a, "content": "hi"}]})
                .to_string(),
            Restricted,
        ),
        case(
            "aadhaar_in_model",
            chat_path,
            json!({"model": format!("mock-gpt {AADHAAR}"), "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
            Restricted,
        ),
        case(
            "aadhaar_in_role",
            chat_path,
            json!({"model": "mock-gpt", "messages": [{"role": format!("user {AADHAAR}"), "content": "hi"}]})
                .to_string(),
            Restricted,
        ),
        case("aadhaar_in_user", chat_path, chat_with(json!({"user": a})), Restricted),
        case(
            "aadhaar_in_metadata_value",
            chat_path,
            chat_with(json!({"metadata": {"customer": AADHAAR}})),
            Restricted,
        ),
        case(
            "card_as_metadata_key",
            chat_path,
            chat_with(json!({"metadata": {CARD: "on file"}})),
            Restricted,
        ),
        case(
            "aadhaar_in_tool_call_ids",
            chat_path,
            json!({"model": "mock-gpt", "messages": [
                {"role": "user", "content": "pay"},
                {"role": "assistant", "tool_calls": [{"id": format!("call {AADHAAR}"), "type": "function",
                    "function": {"name": "pay", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": format!("call {AADHAAR}"), "content": "done"}]})
            .to_string(),
            Restricted,
        ),
        case(
            "aadhaar_in_responses_item_id",
            "/responses",
            json!({"model": "mock-gpt", "input": [
                {"type": "message", "id": "234567890124", "role": "user", "content": "hi"}]})
            .to_string(),
            Restricted,
        ),
        case(
            "aadhaar_as_logit_bias_key",
            chat_path,
            r#"{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}],"logit_bias":{"234567890124":5}}"#,
            Restricted,
        ),
        case(
            "aadhaar_in_response_format_schema_description",
            chat_path,
            chat_with(json!({"response_format": {"type": "json_schema", "json_schema": {"name": "kyc",
                "schema": {"type": "object", "properties": {"uid": {"type": "string",
                    "description": format!("always {AADHAAR}")}}}}}})),
            Restricted,
        ),
        case(
            "card_in_response_format_schema_enum",
            chat_path,
            chat_with(json!({"response_format": {"type": "json_schema", "json_schema": {"name": "pay",
                "schema": {"type": "object", "properties": {"card": {"type": "string",
                    "enum": [CARD]}}}}}})),
            Restricted,
        ),
        case(
            "aadhaar_in_json_schema_format_keyword",
            chat_path,
            chat_with(json!({"response_format": {"type": "json_schema", "json_schema": {"name": "kyc",
                "schema": {"type": "object", "properties": {"uid": {"type": "string",
                    "format": AADHAAR}}}}}})),
            Restricted,
        ),
        case(
            "aadhaar_in_responses_text_format_schema",
            "/responses",
            json!({"model": "mock-gpt", "input": "hi", "text": {"format": {"type": "json_schema",
                "name": "kyc", "schema": {"type": "object", "properties": {"uid": {"type": "string",
                    "description": format!("always {AADHAAR}")}}}}}})
            .to_string(),
            Restricted,
        ),
        case(
            "aadhaar_as_tool_schema_property_name",
            chat_path,
            chat_with(json!({"tools": [{"type": "function", "function": {"name": "kyc",
                "parameters": {"type": "object", "properties": {AADHAAR: {"type": "string"}}}}}]})),
            Restricted,
        ),
        case(
            "aadhaar_in_stop_sequences",
            chat_path,
            chat_with(json!({"stop": ["END", AADHAAR]})),
            Restricted,
        ),
        case(
            "aadhaar_in_unknown_top_level_field",
            chat_path,
            chat_with(json!({"x_audit_note": a})),
            Restricted,
        ),
        case(
            "card_as_message_object_key",
            chat_path,
            json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi", CARD: true}]})
                .to_string(),
            Restricted,
        ),
        case(
            "card_in_content_part_type",
            chat_path,
            json!({"model": "mock-gpt", "messages": [{"role": "user", "content": [
                {"type": CARD, "text": "hi"}]}]})
            .to_string(),
            Restricted,
        ),
        case(
            "aadhaar_in_embeddings_encoding_format",
            "/embeddings",
            json!({"model": "mock-embed", "input": "monsoon", "encoding_format": AADHAAR}).to_string(),
            Restricted,
        ),
        // A repeated key: the value is in the second occurrence.
        case(
            "aadhaar_in_second_user_key",
            chat_path,
            r#"{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}],"user":"ok","user":"Aadhaar 2345 6789 0124"}"#,
            Restricted,
        ),
        case(
            "aadhaar_in_second_content_key",
            chat_path,
            r#"{"model":"mock-gpt","messages":[{"role":"user","content":"hi","content":"Aadhaar 2345 6789 0124"}]}"#,
            Restricted,
        ),
        // Adjacent text parts of one message, which the model reads as one text.
        case(
            "aadhaar_split_across_text_parts",
            chat_path,
            json!({"model": "mock-gpt", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Aadhaar 2345 6789"}, {"type": "text", "text": " 0124"}]}]})
            .to_string(),
            Restricted,
        ),
        case(
            "aadhaar_split_inside_a_group_across_text_parts",
            chat_path,
            json!({"model": "mock-gpt", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Aadhaar 2345 6789 01"}, {"type": "text", "text": "24"}]}]})
            .to_string(),
            Restricted,
        ),
        case(
            "card_split_across_responses_input_text_parts",
            "/responses",
            json!({"model": "mock-gpt", "input": [{"role": "user", "content": [
                {"type": "input_text", "text": "card 41111111"},
                {"type": "input_text", "text": "11111111 declined"}]}]})
            .to_string(),
            Restricted,
        ),
        // Deeper than a scanner goes, with the digits as escapes so that
        // scanning the raw bytes as text would miss them.
        case(
            "aadhaar_escaped_in_metadata_130_arrays_deep",
            chat_path,
            format!(
                r#"{{"model":"mock-gpt","messages":[{{"role":"user","content":"hi"}}],"metadata":{{"a":{}}}}}"#,
                nested(130, r#""Aadhaar \u0032345 6789 0124""#)
            ),
            Undecodable(Some("nest")),
        ),
        case(
            "aadhaar_escaped_in_unknown_field_1000_arrays_deep",
            chat_path,
            format!(
                r#"{{"model":"mock-gpt","messages":[{{"role":"user","content":"hi"}}],"x":{}}}"#,
                nested(1000, r#""Aadhaar \u0032345 6789 0124""#)
            ),
            Undecodable(Some("nest")),
        ),
        // Invalid UTF-8 next to escaped digits.
        case(
            "aadhaar_escaped_beside_invalid_utf8_byte",
            chat_path,
            [
                br#"{"model":"mock-gpt","messages":[{"role":"user","content":"Aadhaar \u0032345 6789 0124 "#.as_slice(),
                &[0xFF],
                br#""}]}"#,
            ]
            .concat(),
            Undecodable(Some("UTF-8")),
        ),
        case(
            "aadhaar_escaped_with_invalid_utf8_in_user",
            chat_path,
            [
                br#"{"model":"mock-gpt","user":""#.as_slice(),
                &[0xFE, 0xFF],
                br#"","messages":[{"role":"user","content":"Aadhaar \u0032345 6789 0124"}]}"#,
            ]
            .concat(),
            Undecodable(Some("UTF-8")),
        ),
        case(
            "aadhaar_with_overlong_utf8_digit",
            chat_path,
            [
                br#"{"model":"mock-gpt","messages":[{"role":"user","content":"Aadhaar "#.as_slice(),
                &[0xC0, 0xB2], // '2' in an overlong (invalid) two-byte form
                br#"345 6789 0124"}]}"#,
            ]
            .concat(),
            Undecodable(Some("UTF-8")),
        ),
        // Other bodies that cannot be decoded completely.
        case(
            "aadhaar_escaped_beside_lone_surrogate_escape",
            chat_path,
            chat_raw(r"Aadhaar \u0032345 6789 0124 \ud800"),
            Undecodable(None),
        ),
        case(
            "aadhaar_escaped_in_truncated_body",
            chat_path,
            r#"{"model":"mock-gpt","messages":[{"role":"user","content":"Aadhaar \u0032345 6789 0124"#,
            Undecodable(None),
        ),
    ]
}

/// Requests with nothing sensitive, which must still reach the default
/// region: without them the suite would pass if everything were refused.
fn controls() -> Vec<Case> {
    use Expect::Public;
    vec![
        case("control_hello", "/chat/completions", chat("hello", false), Public),
        case(
            // Fails the Verhoeff check: an order number, not an Aadhaar.
            "control_order_number",
            "/chat/completions",
            chat("Order 2345 6789 0125 shipped on 2024-05-01", false),
            Public,
        ),
        case(
            "control_emoji_with_joiners_and_markup",
            "/chat/completions",
            chat("\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467} order **2345 6789 0125** is ~~late~~ `shipped`", false),
            Public,
        ),
        case(
            "control_embeddings",
            "/embeddings",
            json!({"model": "mock-embed", "input": ["monsoon", "order 2345.6789.0125"]}).to_string(),
            Public,
        ),
        case(
            "control_responses",
            "/responses",
            json!({"model": "mock-gpt", "input": "Say hi"}).to_string(),
            Public,
        ),
    ]
}

async fn post(fleet: &Fleet, path: &str, body: &[u8]) -> Answer {
    send_bytes("POST", &format!("{}{path}", fleet.base()), body).await
}

fn virginia_count(fleet: &Fleet) -> usize {
    fleet.provider(VIRGINIA).received().len()
}

/// What is wrong with the agent's answer to `c`, if anything.
fn judge_answer(fleet: &Fleet, c: &Case, a: &Answer) -> Result<(), String> {
    let region = a.header("x-residency-region");
    let tier = a.header("x-residency-tier");
    // The body only when it is an error: a model's answer says nothing here.
    let summary = if a.status < 400 {
        format!("status {} region {region:?} tier {tier:?}", a.status)
    } else {
        format!("status {} region {region:?}: {}", a.status, a.body)
    };
    let arrived_in = |r: &str| {
        fleet
            .provider(r)
            .received()
            .iter()
            .any(|x| x.body == c.body)
    };
    match c.expect {
        Expect::Restricted if a.status == 200 => {
            if !INDIA.contains(&region) || tier != "restricted" {
                return Err(format!(
                    "answered from outside India or not restricted; {summary}"
                ));
            }
            if !arrived_in(region) {
                return Err(format!(
                    "the provider in {region} did not receive it; {summary}"
                ));
            }
            Ok(())
        }
        Expect::Restricted => {
            let message = serde_json::from_str::<serde_json::Value>(&a.body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
            match message {
                Some(_) if a.status >= 400 => Ok(()),
                _ => Err(format!(
                    "neither India nor an OpenAI-style refusal; {summary}"
                )),
            }
        }
        Expect::Undecodable(word) => {
            if a.status != 400 {
                return Err(format!("not refused with 400; {summary}"));
            }
            let message = serde_json::from_str::<serde_json::Value>(&a.body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_default();
            if message.is_empty() {
                return Err(format!("refused without an error message; {summary}"));
            }
            if let Some(w) = word {
                if !message.to_lowercase().contains(&w.to_lowercase()) {
                    return Err(format!("the message does not say {w:?}; {summary}"));
                }
            }
            Ok(())
        }
        Expect::Public => {
            if a.status != 200 || region != DEFAULT_REGION || tier != "public" {
                return Err(format!(
                    "did not go to {DEFAULT_REGION} as public; {summary}"
                ));
            }
            if !arrived_in(DEFAULT_REGION) {
                return Err(format!(
                    "the provider in {DEFAULT_REGION} did not receive it; {summary}"
                ));
            }
            Ok(())
        }
    }
}

/// What is wrong with the gateway abroad's first frame for `c`, if anything.
fn judge_frame(c: &Case, frame: &Frame) -> Result<(), String> {
    match (c.expect, frame) {
        (Expect::Public, Frame::ResponseHead(h)) if h.status == 200 => Ok(()),
        (Expect::Public, other) => Err(format!("a public request was not forwarded: {other:?}")),
        (Expect::Undecodable(_), Frame::Error(e)) if e.code == ErrorCode::BadRequest => Ok(()),
        (Expect::Restricted, Frame::Error(e))
            if matches!(e.code, ErrorCode::PolicyDenied | ErrorCode::BadRequest) =>
        {
            // Types and counts only, never the value.
            if e.message.contains("6789") || e.message.contains("4111") {
                return Err(format!("the refusal names the value: {}", e.message));
            }
            Ok(())
        }
        (_, Frame::ResponseHead(h)) => {
            Err(format!("forwarded to the provider (status {})", h.status))
        }
        (_, other) => Err(format!("not the expected refusal: {other:?}")),
    }
}

fn report(failures: &[String], total: usize) {
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[tokio::test]
async fn markdown_bold_card_goes_to_india_and_a_gateway_abroad_refuses_it() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let body = chat("Please charge **4111 1111 1111 1111** today", false);
    let a = post(&fleet, "/chat/completions", body.as_bytes()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-residency-tier"), "restricted", "{}", a.body);
    let region = a.header("x-residency-region");
    assert!(INDIA.contains(&region), "went to {region}");
    assert!(fleet
        .provider(region)
        .received()
        .iter()
        .any(|r| r.body == body.as_bytes()));
    assert!(fleet.provider(VIRGINIA).received().is_empty());

    // An agent that calls it public and sends it abroad is refused there.
    match raw_request(&fleet, VIRGINIA, Tier::Public, &body).await {
        Frame::Error(e) => {
            assert_eq!(e.code, ErrorCode::PolicyDenied, "{}", e.message);
            assert!(e.message.contains("payment_card:1"), "{}", e.message);
            assert!(!e.message.contains("4111"), "{}", e.message);
            assert!(!e.message.contains("1111"), "{}", e.message);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(fleet.provider(VIRGINIA).received().is_empty());
}

#[tokio::test]
async fn evasions_through_the_agent_stay_in_india_or_are_refused() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let cases = evasions();
    let mut failures = Vec::new();
    for c in &cases {
        let before = virginia_count(&fleet);
        let verdict = match tokio::time::timeout(PER_REQUEST, post(&fleet, c.path, &c.body)).await {
            Ok(a) => judge_answer(&fleet, c, &a),
            Err(_) => Err(format!("no answer within {PER_REQUEST:?}")),
        };
        // The answer came after the provider recorded the request, so a
        // request that reached Virginia is counted by now.
        let verdict = if virginia_count(&fleet) > before {
            Err(format!(
                "reached the provider in {VIRGINIA}; {}",
                verdict.err().unwrap_or_default()
            ))
        } else {
            verdict
        };
        if let Err(why) = verdict {
            failures.push(format!("{}: {why}", c.name));
        }
    }
    // What matters most, checked where it matters.
    let abroad = fleet.provider(VIRGINIA).received();
    let leaked: Vec<&str> = abroad
        .iter()
        .filter_map(|r| cases.iter().find(|c| c.body == r.body).map(|c| c.name))
        .collect();

    // Public requests still flow to the default region.
    let public = controls();
    for c in &public {
        let a = post(&fleet, c.path, &c.body).await;
        if let Err(why) = judge_answer(&fleet, c, &a) {
            failures.push(format!("{}: {why}", c.name));
        }
    }
    assert!(
        abroad.is_empty(),
        "the provider in {VIRGINIA} received {leaked:?}; all failures:\n  {}",
        failures.join("\n  ")
    );
    report(&failures, cases.len() + public.len());
    assert_eq!(virginia_count(&fleet), public.len());
}

#[tokio::test]
async fn evasions_handed_to_the_gateway_abroad_are_refused_whatever_the_agent_claims() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let cases = evasions();
    let public = controls();
    let mut failures = Vec::new();
    for c in cases.iter().chain(&public) {
        let path = format!("/v1{}", c.path);
        let sent = raw_request_bytes(&fleet, VIRGINIA, &path, Tier::Public, &c.body);
        let verdict = match tokio::time::timeout(PER_REQUEST, sent).await {
            Ok(frame) => judge_frame(c, &frame),
            Err(_) => Err(format!("no answer within {PER_REQUEST:?}")),
        };
        if let Err(why) = verdict {
            failures.push(format!("{}: {why}", c.name));
        }
    }
    let received = fleet.provider(VIRGINIA).received();
    let leaked: Vec<&str> = received
        .iter()
        .filter_map(|r| cases.iter().find(|c| c.body == r.body).map(|c| c.name))
        .collect();
    assert!(
        leaked.is_empty(),
        "the provider in {VIRGINIA} received {leaked:?}; all failures:\n  {}",
        failures.join("\n  ")
    );
    report(&failures, cases.len() + public.len());
    // Exactly the public requests, each once.
    assert_eq!(received.len(), public.len());
    for c in &public {
        assert!(received.iter().any(|r| r.body == c.body), "{}", c.name);
    }
}
