//! mxguard-learn: the learning classifier behind BAYES_SPAM / BAYES_HAM.
//!
//! It reads messages parsed by mxguard-message (the one MIME parse,
//! `mxguard_message::parse`) and owns the feature extractor
//! ([`tokenize`]), the model ([`Model`]:
//! online logistic regression with AdaGrad over hashed features, and its
//! compact versioned serialisation), the message digest that makes learning
//! idempotent ([`Digest`]), learning, relearning and unlearning through the
//! store (`persist::Learner`, feature `store`), the scanners' view of the
//! model ([`ModelHandle`]), reading mail folders ([`corpus`]) and evaluation
//! ([`eval`], [`metrics`]).
//!
//! It must not: parse MIME, reduce HTML or find URLs itself (that is
//! mxguard-message's, so the classifier and the checks see the same
//! message), decide a verdict (the scan check turns a probability into
//! symbols), touch sockets, or read the store on the scan path: a scan reads
//! the in-memory model behind [`ModelHandle::current`]; only
//! `persist::refresh`, called by the binary at most every refresh
//! interval, reads the store. With `default-features = false` (no `store`
//! feature) it does not depend on the store at all: that is how the scanner
//! crate uses it.
//!
//! # Why this model
//!
//! Measured with `cargo run --release -p mxguard-learn --example compare --
//! DIR/corpus-dev` (5-fold cross-validation on corpus-dev, seed 1, pooled
//! out-of-fold scores; "product" is the feature set of [`tokenize`] as
//! shipped: words plus header, Received, MIME, URL and shape families):
//!
//! | classifier | features | 1-AUC | FN at FP ≤ 0.1% |
//! |---|---|---|---|
//! | Robinson/Fisher chi-square (SpamAssassin-style Bayes) | body+Subject words | 0.520% | 31.8% |
//! | naive Bayes | body+Subject words | 0.517% | 35.9% |
//! | online LR, AdaGrad | body+Subject words | 0.357% | 46.6% |
//! | naive Bayes | words + word bigrams (rspamd-like) | 0.257% | 31.0% |
//! | Robinson/Fisher chi-square | product | 0.171% | 17.3% |
//! | naive Bayes | product | 0.239% | 11.6% |
//! | batch LR, plain SGD, 20 epochs | product | 0.099% | 29.1% |
//! | batch LR, AdaGrad, 20 epochs | product | 0.061% | 13.9% |
//! | online LR, AdaGrad, one pass (the model until 2026-12) | product | 0.049% | 10.7% |
//! | 5 online LR models (5 orders), averaged | product | 0.045% | 7.8% |
//! | online LR, AdaGrad | product + word bigrams | 0.062% | 21.5% |
//! | online LR, AdaGrad | product + character 4-grams | 0.095% | 22.5% |
//! | online LR, AdaGrad | product + HTML tag names | 0.055% | 17.4% |
//!
//! Leaving one family out of the product (online LR): Received 0.059% /
//! 15.3%, the header families 0.088% / 14.2%, shape 0.065% / 14.3%, MIME
//! 0.055% / 12.9%, other header values 0.052% / 11.6%, URLs 0.051% /
//! 11.1%: each helps. (Naive Bayes, which counts correlated tokens twice,
//! gets worse with the header values: 0.095% without them.) Averaging five
//! models learned in different orders helps a little, inconsistently across
//! seeds, for five times the memory and scoring time: not taken.
//!
//! The header, Received, MIME, URL and shape features matter more than the
//! model: they cut 1-AUC by 3 to 7 times. On top of them, online
//! logistic regression with per-feature AdaGrad rates beats both Bayes
//! variants and the batch-trained regressions. Word bigrams and character
//! n-grams dilute the per-message normalisation and lose here (they win on
//! larger TREC-style corpora with far more training data; the extractor
//! keeps them as options for re-measuring).
//!
//! # Weighing words and header-side evidence apart
//!
//! The model above scaled all of a message's features by one 1/√n, so a
//! long newsletter's hundreds of words drowned the few header features
//! that tell solicited bulk mail from spam, and the FN rate at FP ≤ 0.1%
//! swung with a handful of newsletters labelled ham. The shipped model
//! scales the words (body, Subject) by 1/√(words) and the header-side
//! features by a group weight over √(header-side features) (see
//! [`model`]). Measured with `cargo run --release -p mxguard-learn
//! --example tune -- [VARIANT…]` (5-fold CV on corpus-dev with six fold
//! seeds, mean of the pooled figures; the six FN figures in brackets):
//!
//! | variant | 1-AUC | FN at FP ≤ 0.1% |
//! |---|---|---|
//! | one 1/√n, rate 1 (the model before) | 0.050% | 10.0% [14.8 9.2 8.0 6.8 6.0 15.2] |
//! | one 1/√n, rate 0.3 | 0.075% | 14.2% |
//! | words and header side apart, equal weight, rate 0.3 | 0.044% | 7.3% |
//! | header side ×2, rate 0.3 | 0.030% | 5.0% |
//! | header side ×2, Received ×4, identities ×3, rate 0.3 (re-weighed below) | 0.028% | 4.7% [6.5 3.2 5.4 4.0 3.5 5.6] |
//! | the same, two passes | 0.026% | 4.6% |
//! | the same, 4 orders averaged | 0.023% | 4.2% |
//! | the same + naive Bayes log-odds ×0.1 | 0.030% | 4.8% |
//! | each header-side family normalised apart | 0.030–0.044% | 5.6–9.0% |
//! | the shipped model + L2 0.001 / 0.01 | 0.031% / 0.053% | 4.4% / 6.9% |
//! | the shipped model, AdaGrad sums starting at 0.001 / 0.01 | 0.033% / 0.038% | 5.0% / 6.0% |
//! | Subject words as their own part (weight 0.5 / 1) | 0.028% | 4.8% / 4.7% |
//! | + the /16 networks of the relay hops before the hand-over | 0.028% | 4.6% |
//!
//! Then the sender's shape, measured the same way on the shipped model
//! (each row adds to the one above):
//!
//! | features | 1-AUC | FN at FP ≤ 0.1% |
//! |---|---|---|
//! | as above | 0.028% | 4.70% |
//! | + the From display name against the address (in the domain, in the local part, in neither, an address in the name) | 0.025% | 3.66% |
//! | + Reply-To in the From domain or not, HTML forms, URLs with user info or punycode (neutral here: phishing marks, rare in this corpus) | 0.024% | 3.64% |
//! | + the envelope sender's local part (bounce/role, VERP, plain) | 0.023% | 3.35% |
//! | + the shape of the Message-ID's local part | 0.022% | 3.07% |
//! | + the punctuation of Content-Type | 0.022% | 2.96% [3.1 2.3 3.5 3.2 2.4 3.2] |
//! | **the same, header side re-weighed ×2.5 (shipped)** | **0.023%** | **2.80%** [3.0 2.3 3.5 2.7 2.2 3.1] |
//!
//! Re-weighing after the new header-side features: ×2 2.96%, ×2.5 2.80%,
//! ×3 2.89%; ×2.5 with rate 0.25 / 0.4 2.94% / 3.02%; Received ×1.6 and
//! identities ×1.2 instead of ×2 and ×1.5, 2.84%; shape ×1.5 / ×0.7 (at
//! ×2) 2.95% / 3.34%.
//!
//! Measured and left out there: role words in the From local part
//! (3.32%), the punctuation of From (2.90%, mixed across seeds), the shape
//! of Date (3.13%), "Re:" without In-Reply-To/References (3.75%), an
//! explicit "envelope sender not the From domain" (3.64%), Message-ID shape
//! with letter case (3.11%).
//!
//! Two passes and averaged orders gain a little for a training that
//! single-message learning (autolearn, `mxguard learn` of one file) could
//! not repeat: not taken. A feature for "the URLs point at the sender's
//! own identities" (From, envelope sender, Message-ID, DKIM), although
//! 942 ham and 91 spam have it, measured neutral (the URL and sender
//! domains already carry it) and was left out.
//!
//! A second round (2026-12-02, six-seed FN means; the shipped model is
//! 2.80% [3.0 2.3 3.5 2.7 2.2 3.1]), none taken because none brought the
//! worst seed to 3% and the best moves are within the ±0.1 point single
//! variants move by: pairs of consecutive header names (a generator's
//! field order) at weight 0.5 / 1 / 1.5 3.26% / 3.60% / 4.13% (1-AUC
//! 0.021%); header names in non-standard case 2.85–3.06%; "the To address
//! is in the body" 2.80% (ham 800, spam 156 have it: the model already
//! carries it); the share of the message's features never learned, per
//! group, 2.76–2.97%; dropping 10–30% of features at random while learning
//! 3.13–3.62%; floors of 20–50 on the feature counts of the 1/√n scaling
//! 2.79–2.94%; a tanh cap on each side's total 2.78–3.09%; ham errors
//! weighed ×1.25 / ×1.5 / ×2 / ×3 2.77% / 2.77% / 2.86% / 3.03%; the
//! normalisation exponents 0.4 / 0.6 3.03–3.26%; 2^22 weights 2.83%; the
//! header-value, MIME and URL weights ×0.7 / ×1.5 2.78–3.02%. The best
//! combination (To in body, words capped, ham ×1.25) 2.72%
//! [2.9 2.2 3.2 3.1 2.2 2.7].
//!
//! # Members learned in different orders (2026-12-04)
//!
//! Measured over twelve fold seeds instead of six, the model above is
//! less steady than its six-seed mean said: 3.64% [3.0 2.3 3.5 2.7 2.2
//! 3.1 4.9 3.8 7.3 4.2 3.0 3.6]. One online pass in one order leaves each
//! weight wherever the last few messages of its features pushed it, and a
//! handful of spam-like hams near the top of the ham scores move with the
//! order. Averaging models that learned the same messages in different
//! orders takes that noise out, and since the log-odds are linear in the
//! weights, one table of mean weights scores exactly like the average: the
//! scan cost does not change. `examples/tune.rs`, twelve seeds (`SEEDS=12`),
//! the shipped features and weights:
//!
//! | variant | 1-AUC | FN at FP ≤ 0.1% |
//! |---|---|---|
//! | one model (until 2026-12-04) | 0.023% | 3.64% [3.0 2.3 3.5 2.7 2.2 3.1 4.9 3.8 7.3 4.2 3.0 3.6] |
//! | 2 members | 0.019% | 3.07% |
//! | 3 members | 0.018% | 2.83% |
//! | **4 members (shipped)** | **0.017%** | **2.84%** [2.6 2.6 2.9 2.7 2.4 2.7 3.1 3.0 3.5 3.4 2.3 2.9] |
//! | 6 members | 0.017% | 2.71% [2.7 2.2 2.7 2.9 2.6 2.6 3.1 2.6 3.0 2.9 2.6 2.6] |
//! | 8 members | 0.016% | 2.72% |
//! | 4 members, rate 0.4 / 0.5 | 0.017% | 2.80% / 2.84% |
//! | 4 members, header side ×2 / ×3 | 0.018% | 2.92% / 2.83% |
//! | 4 members, two passes each | 0.018% | 2.97% |
//! | one model, its iterates averaged (from the start / from halfway) | 0.042% / 0.026% | 5.24% / 3.84% |
//!
//! A second round on four members (twelve seeds, and `OSEEDS=5`: each
//! fold seed averaged over five draws of the members' orders, because one
//! draw of the shipped model's twelve-seed mean moves between 2.63% and
//! 3.03%): four members 2.86%, six 2.74%, eight 2.71%. Measured and not
//! taken, all within noise or worse (the table is in
//! `examples/tune.rs`'s knobs): online bagging (each member learning each
//! message Poisson(1) times: 3.75–3.77%, or weighing its gradient:
//! 2.99%), members with different rates, header weights or ham weights
//! (2.79–2.91%), random feature subsets per member (2.82–2.93%),
//! antithetic or class-stratified orders (2.84–2.92%), dropping
//! near-universal features (2.88–2.93%), an AdaGrad intercept (2.82–2.85%),
//! AdaGrad dual averaging (3.26–3.71%). Fold seed 10 stays at about 3.2%
//! however the orders fall: what is left is how the few commercial
//! newsletters labelled ham (two near-identical BetZip mailings, a stock
//! alert, Tesco's and Ryanair's) fall into folds.
//!
//! Four members, not six or eight: the learners' state grows with each
//! member (8 MiB of weights and AdaGrad sums per member in memory at 2^20
//! slots, and 8 bytes per used slot in the stored blob, rewritten at every
//! learn: 0.84 MB per member after corpus-dev, up to 8 MB in a full
//! table), and beyond
//! four the gain is within the one-spam steps (0.056 points) the FN
//! figure moves by. Averaging one model's iterates (Polyak) is worse:
//! early iterates are poor and late ones are the order-dependent ones.
//!
//! Online learning is order-dependent, so `persist` keeps each learned
//! message's features and rebuilds the model from all of them (each
//! member in its own fixed order derived from the digests) when a batch is
//! large or relearns or forgets: learning a folder of spam, then one of
//! ham, gives the same model as learning them mixed, and `mxguard eval`
//! (which trains each member in its own seeded shuffled order) measures
//! what `mxguard learn` builds.
//!
//! The model is two blobs in the store, the learners' state and the
//! scanners' copy of the mean weights, read by scanners once per change:
//! there are no per-token lookups, unlike rspamd's and SpamAssassin's
//! Bayes, whose token counts live in Redis or a database.

pub mod corpus;
mod digest;
pub mod eval;
mod handle;
mod hash;
pub mod metrics;
pub mod model;
#[cfg(feature = "store")]
pub mod persist;
pub mod tokenize;

pub use digest::Digest;
pub use handle::ModelHandle;
pub use model::Model;
pub use tokenize::{Features, explain, extract, extract_with_hops, extract_with_text};
