//! Fuzz target: the gateway's one edit to a request body, the top-level
//! `model` name, never panics, and on a JSON object changes that value and
//! nothing else: the result parses to the same object with only `model`
//! replaced, a body without a top-level string `model` is left alone, and
//! one that names `model` twice is refused.

#![no_main]

use libfuzzer_sys::fuzz_target;
use residency_agent::gateway::models::{body_model, with_model};

fuzz_target!(|data: &[u8]| {
    let name = "prov\"ider-\u{e9}\\model";
    let rewritten = with_model(data, name);
    let model = body_model(data);
    let Ok(serde_json::Value::Object(mut before)) = serde_json::from_slice(data) else {
        return;
    };
    if models_named(data) > 1 {
        assert!(rewritten.is_err() && model.is_err());
        return;
    }
    let (rewritten, model) = (rewritten.unwrap(), model.unwrap());
    match before.get("model") {
        Some(serde_json::Value::String(s)) => {
            assert_eq!(model.as_deref(), Some(s.as_str()));
            let out = rewritten.expect("a top-level string model is rewritten");
            let after: serde_json::Value =
                serde_json::from_slice(&out).expect("the rewritten body is JSON");
            before.insert("model".into(), name.into());
            assert_eq!(after, serde_json::Value::Object(before));
        }
        _ => {
            assert!(rewritten.is_none());
            assert!(model.is_none());
        }
    }
});

/// How many times the top-level object names `model`.
fn models_named(data: &[u8]) -> usize {
    #[derive(Default)]
    struct Count(usize);
    impl<'de> serde::Deserialize<'de> for Count {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Count;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Count, A::Error> {
                    let mut n = 0;
                    while let Some(k) = m.next_key::<String>()? {
                        if k == "model" {
                            n += 1;
                        }
                        m.next_value::<serde::de::IgnoredAny>()?;
                    }
                    Ok(Count(n))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_slice::<Count>(data).map_or(0, |c| c.0)
}
