//! Which gateways may take a request for a given model: the one that serves
//! it (by name or alias, on the request's API path) and whose provider
//! processes it where the deciding rule allows. A gateway in Mumbai whose
//! model runs on a global deployment processes the data anywhere, so the
//! rule must allow anywhere.

use residency_proto::{Jurisdiction, ModelList, ModelOffer, Tier};

use crate::policy::AllowSet;

/// How a gateway fits a request's model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// It serves the model where the rule allows (or the request names none).
    Serves,
    /// It does not serve the model on this path.
    NoModel,
    /// It serves the model, but processes it outside what the rule allows:
    /// in this jurisdiction, or anywhere (`None`).
    ProcessedOutside(Option<Jurisdiction>),
}

/// The request side of [`fit`].
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// The model the body names.
    pub model: Option<&'a str>,
    /// The API path below `/v1/`, without the query.
    pub api: &'a str,
    /// The deciding rule's allowed set (`None` under the built-in rule).
    pub allow: Option<&'a AllowSet>,
    /// The request's tier.
    pub tier: Tier,
}

/// How a gateway in a region of jurisdiction `home`, which advertised
/// `list`, fits the request.
pub fn fit(list: &ModelList, home: Option<Jurisdiction>, want: &Wanted<'_>) -> Fit {
    let Some(model) = want.model else {
        return Fit::Serves;
    };
    if list.open {
        return Fit::Serves;
    }
    let Some(offer) = list.offer(model).filter(|o| o.serves_api(want.api)) else {
        return Fit::NoModel;
    };
    processing_fit(offer, home, want.allow, want.tier)
}

/// Whether `offer`'s place of processing is allowed: its gateway region's
/// jurisdiction always is (the region itself was allowed); anywhere else the
/// rule must allow the place of processing itself.
pub fn processing_fit(
    offer: &ModelOffer,
    home: Option<Jurisdiction>,
    allow: Option<&AllowSet>,
    tier: Tier,
) -> Fit {
    let at = offer.processing.jurisdiction(home);
    if at == home && home.is_some() {
        return Fit::Serves;
    }
    let allowed = match (allow, at) {
        (Some(set), Some(j)) => set.any_jurisdiction || set.jurisdictions.contains(&j),
        (Some(set), None) => set.any_jurisdiction,
        // The built-in rule sends only public data anywhere.
        (None, _) => tier == Tier::Public,
    };
    if allowed {
        Fit::Serves
    } else {
        Fit::ProcessedOutside(at)
    }
}

/// The API path below `/v1/` of a path and query, e.g. `chat/completions`.
pub fn api_of(path_and_query: &str) -> &str {
    let path = path_and_query.split('?').next().unwrap_or("");
    path.strip_prefix("/v1/").unwrap_or("")
}

#[cfg(test)]
mod tests {
    use residency_proto::Processing;

    use super::*;

    fn list(processing: Processing) -> ModelList {
        ModelList {
            open: false,
            models: vec![ModelOffer {
                name: "gpt-4o".into(),
                aliases: vec!["4o".into()],
                apis: vec!["chat/completions".into()],
                processing,
            }],
        }
    }

    fn want<'a>(model: Option<&'a str>, allow: Option<&'a AllowSet>, tier: Tier) -> Wanted<'a> {
        Wanted {
            model,
            api: "chat/completions",
            allow,
            tier,
        }
    }

    #[test]
    fn a_gateway_fits_only_models_it_serves_on_the_path() {
        let india = Jurisdiction::new("IN");
        let l = list(Processing::InRegion);
        assert_eq!(
            fit(&l, india, &want(Some("gpt-4o"), None, Tier::Restricted)),
            Fit::Serves
        );
        assert_eq!(
            fit(&l, india, &want(Some("4o"), None, Tier::Restricted)),
            Fit::Serves
        );
        assert_eq!(
            fit(&l, india, &want(Some("gpt-5"), None, Tier::Public)),
            Fit::NoModel
        );
        let embeddings = Wanted {
            api: "embeddings",
            ..want(Some("gpt-4o"), None, Tier::Public)
        };
        assert_eq!(fit(&l, india, &embeddings), Fit::NoModel);
        // No model named, or a gateway without a model map: any gateway.
        assert_eq!(
            fit(&l, india, &want(None, None, Tier::Restricted)),
            Fit::Serves
        );
        let open = ModelList {
            open: true,
            models: Vec::new(),
        };
        assert_eq!(
            fit(&open, india, &want(Some("x"), None, Tier::Restricted)),
            Fit::Serves
        );
    }

    #[test]
    fn processing_outside_the_region_needs_the_rule_to_allow_where_it_happens() {
        let india = Jurisdiction::new("IN");
        let only_india = AllowSet {
            jurisdictions: vec![Jurisdiction::new("IN").unwrap()],
            ..AllowSet::default()
        };
        let anywhere = AllowSet {
            any_jurisdiction: true,
            ..AllowSet::default()
        };
        let global = list(Processing::Global);
        let r = Tier::Restricted;
        assert_eq!(
            fit(&global, india, &want(Some("gpt-4o"), Some(&only_india), r)),
            Fit::ProcessedOutside(None)
        );
        assert_eq!(
            fit(&global, india, &want(Some("gpt-4o"), Some(&anywhere), r)),
            Fit::Serves
        );
        // A data zone inside India is India.
        let zone = list(Processing::Within(Jurisdiction::new("IN").unwrap()));
        assert_eq!(
            fit(&zone, india, &want(Some("gpt-4o"), Some(&only_india), r)),
            Fit::Serves
        );
        let eu = Jurisdiction::new("DE").unwrap();
        let zone = list(Processing::Within(eu));
        assert_eq!(
            fit(&zone, india, &want(Some("gpt-4o"), Some(&only_india), r)),
            Fit::ProcessedOutside(Some(eu))
        );
        // Without a policy, only public data goes to a global deployment.
        assert_eq!(
            fit(&global, india, &want(Some("gpt-4o"), None, Tier::Internal)),
            Fit::ProcessedOutside(None)
        );
        assert_eq!(
            fit(&global, india, &want(Some("gpt-4o"), None, Tier::Public)),
            Fit::Serves
        );
    }

    #[test]
    fn the_api_is_the_path_below_v1_without_the_query() {
        assert_eq!(api_of("/v1/chat/completions?x=1"), "chat/completions");
        assert_eq!(api_of("/v1/models"), "models");
        assert_eq!(api_of("/health"), "");
    }
}
