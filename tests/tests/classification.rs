//! Classification in the request path: what the classifier finds decides
//! where the request may go, and restricted data never leaves India.

#![allow(clippy::unwrap_used)] // test code

use residency_tests::*;
use serde_json::json;

const INDIA: [&str; 2] = ["aws:ap-south-1", "aws:ap-south-2"];

async fn post(fleet: &Fleet, path: &str, body: &str) -> Answer {
    send("POST", &format!("{}{path}", fleet.base()), body).await
}

fn virginia_saw(fleet: &Fleet, needle: &str) -> bool {
    fleet
        .provider("aws:us-east-1")
        .received()
        .iter()
        .any(|r| String::from_utf8_lossy(&r.body).contains(needle))
}

#[tokio::test]
async fn restricted_requests_stay_in_india_in_every_shape() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let cases = [
        // plain Aadhaar, grouped
        ("/chat/completions", chat("Verify Aadhaar 2345 6789 0124 for KYC", false)),
        // streamed
        ("/chat/completions", chat("Aadhaar 2345-6789-0124, stream the summary", true)),
        // digits written as JSON escapes: \u0032 is '2'
        (
            "/chat/completions",
            r#"{"model":"mock-gpt","messages":[{"role":"user","content":"Aadhaar \u0032345 6789 0124"}]}"#.to_owned(),
        ),
        // Devanagari digits
        ("/chat/completions", chat("आधार संख्या २३४५ ६७८९ ०१२४ है", false)),
        // a card number inside tool call arguments
        (
            "/chat/completions",
            json!({"model":"mock-gpt","messages":[
                {"role":"user","content":"pay the bill"},
                {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"pay","arguments":"{\"card\":\"4111 1111 1111 1111\"}"}}]},
                {"role":"tool","tool_call_id":"c1","content":"done"}]}).to_string(),
        ),
        // embeddings input array
        (
            "/embeddings",
            json!({"model":"mock-embed","input":["monsoon","UPI ramesh.k@okaxis sent 500"]}).to_string(),
        ),
        // completions prompt
        ("/completions", json!({"model":"mock-gpt","prompt":"ABHA 12-3456-7890-1234 discharge summary"}).to_string()),
        // responses API input items
        (
            "/responses",
            json!({"model":"mock-gpt","input":[{"role":"user","content":[{"type":"input_text","text":"card 5555 5555 5555 4444 declined"}]}]}).to_string(),
        ),
    ];
    for (path, body) in &cases {
        let a = post(&fleet, path, body).await;
        assert_eq!(a.status, 200, "{path} {body}: {}", a.body);
        assert_eq!(a.header("x-residency-tier"), "restricted", "{body}");
        assert!(
            INDIA.contains(&a.header("x-residency-region")),
            "{body} went to {}",
            a.header("x-residency-region")
        );
    }
    // Checked where it matters: what the Virginia provider actually received.
    assert!(fleet.provider("aws:us-east-1").received().is_empty());
    let india: usize = INDIA
        .iter()
        .map(|r| fleet.provider(r).received().len())
        .sum();
    assert_eq!(india, cases.len());
}

#[tokio::test]
async fn confidential_goes_to_india_and_public_to_the_default() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let a = post(
        &fleet,
        "/chat/completions",
        &chat("PAN ABCPE1234F, mobile +91 98765 43210", false),
    )
    .await;
    assert_eq!(a.header("x-residency-tier"), "confidential");
    assert!(INDIA.contains(&a.header("x-residency-region")));

    let a = post(
        &fleet,
        "/chat/completions",
        &chat("Order 2345 6789 0125 shipped on 2024-05-01", false),
    )
    .await;
    // A 12-digit number that fails the Verhoeff check is not an Aadhaar.
    assert_eq!(a.header("x-residency-tier"), "public", "{}", a.body);
    assert_eq!(a.header("x-residency-region"), "aws:us-east-1");
    assert!(virginia_saw(&fleet, "Order 2345"));
}

#[tokio::test]
async fn unscannable_content_fails_closed() {
    let fleet = Fleet::start(FleetOptions::default()).await;
    let body = json!({"model":"mock-gpt","messages":[{"role":"user","content":[
        {"type":"text","text":"What is in this picture?"},
        {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]})
    .to_string();
    let a = post(&fleet, "/chat/completions", &body).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-residency-tier"), "restricted");
    assert!(INDIA.contains(&a.header("x-residency-region")));
    assert!(!virginia_saw(&fleet, "picture"));
}

#[tokio::test]
async fn restricted_with_india_down_is_refused_never_sent_abroad() {
    let mut fleet = Fleet::start(FleetOptions::default()).await;
    for i in 0..2 {
        fleet.gateways[i].take().unwrap().abort();
    }
    // Wait until the agent has noticed both India links are down.
    for _ in 0..100 {
        let up = fleet
            .agent
            .pool()
            .links()
            .iter()
            .filter(|l| l.is_up())
            .count();
        if up == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let a = post(
        &fleet,
        "/chat/completions",
        &chat("Aadhaar 2345 6789 0124 please", false),
    )
    .await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.json()["error"]["type"], "no_compliant_route");
    assert!(a.body.contains("aws:ap-south-1") && a.body.contains("aws:ap-south-2"));
    assert!(!virginia_saw(&fleet, "Aadhaar"));

    // Public traffic still flows to Virginia.
    let a = post(&fleet, "/chat/completions", &chat("hello", false)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-residency-region"), "aws:us-east-1");
}
