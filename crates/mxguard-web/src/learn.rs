//! `/learnspam`, `/learnham` (rspamd's) and `/unlearn` (mxguard's): the
//! body is one message, learned into the store's model through the same
//! learner `mxguard learn` uses, published at once to the scanners of this
//! process.

use crate::api::{Api, Reply, Req, error, json};
use hyper::StatusCode;
use mxguard_learn::persist::{Class, Sample};
use serde_json::json;

pub async fn learn(api: &Api, req: &Req, class: Option<Class>) -> Reply {
    if req.body.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "the body is empty: POST the message to learn",
        );
    }
    let sender = req
        .header("from")
        .map(|f| mxguard_core::envelope::strip_path(f).to_string());
    let body = req.body.clone();
    // Parsing and tokenising a big message is CPU work: off the workers.
    let sample =
        tokio::task::spawn_blocking(move || Sample::from_raw_with_sender(&body, sender.as_deref()))
            .await
            .ok()
            .flatten();
    let Some(sample) = sample else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body is not a mail message (no header fields found)",
        );
    };
    let samples = [sample];
    let result = match class {
        Some(c) => api.learner.learn(&samples, c).await,
        None => api.learner.unlearn(&samples).await,
    };
    match result {
        Ok(r) => json(
            StatusCode::OK,
            &json!({
                "success": true,
                "learned": r.learned,
                "relearned": r.relearned,
                "unchanged": r.unchanged,
                "unlearned": r.unlearned,
                "not_found": r.not_found,
            }),
        ),
        Err(e) => {
            api.note_error("learn", e.to_string());
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot learn: {e}"),
            )
        }
    }
}
