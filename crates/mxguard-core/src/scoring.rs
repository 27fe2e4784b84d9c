//! rspamd's scoring model: weighted symbols, groups with caps, action thresholds
//! and forced actions.

use crate::Action;
use crate::config::{ActionsConfig, Config};
use crate::verdict::{SymbolResult, Verdict};
use std::collections::{BTreeMap, HashMap};

/// A symbol a check can emit, with its default weight.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolDef {
    pub name: String,
    pub weight: f64,
    pub group: String,
    pub description: String,
}

impl SymbolDef {
    pub fn new(name: &str, weight: f64, group: &str, description: &str) -> SymbolDef {
        SymbolDef {
            name: name.to_string(),
            weight,
            group: group.to_string(),
            description: description.to_string(),
        }
    }
}

/// Every known symbol with its effective weight (defaults overridden by
/// `[symbols.NAME]`), the group caps and the action thresholds.
#[derive(Debug, Clone, Default)]
pub struct SymbolTable {
    symbols: HashMap<String, SymbolDef>,
    group_caps: HashMap<String, f64>,
    actions: ActionsConfig,
}

impl SymbolTable {
    pub fn new(config: &Config) -> SymbolTable {
        let group_caps = config
            .groups
            .iter()
            .filter_map(|(name, g)| g.max_score.map(|m| (name.clone(), m)))
            .collect();
        SymbolTable {
            symbols: HashMap::new(),
            group_caps,
            actions: config.actions.clone(),
        }
    }

    /// Registers a check's symbol, then applies the config's override for it.
    pub fn register(&mut self, mut def: SymbolDef, config: &Config) {
        if let Some(o) = config.symbols.get(&def.name) {
            if let Some(w) = o.score {
                def.weight = w;
            }
            if let Some(g) = &o.group {
                def.group = g.clone();
            }
            if let Some(d) = &o.description {
                def.description = d.clone();
            }
        }
        self.symbols.insert(def.name.clone(), def);
    }

    pub fn get(&self, name: &str) -> Option<&SymbolDef> {
        self.symbols.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.symbols.keys().map(String::as_str)
    }

    /// The score at which a message counts as spam (rspamd's `required_score`):
    /// the reject threshold, or the highest enabled one when reject is off.
    pub fn required_score(&self) -> f64 {
        if let Some(r) = self.actions.reject.0 {
            return r;
        }
        self.thresholds()
            .iter()
            .map(|(_, t)| *t)
            .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))))
            .unwrap_or(0.0)
    }

    /// Enabled thresholds, highest first.
    fn thresholds(&self) -> Vec<(Action, f64)> {
        let a = &self.actions;
        let mut v: Vec<(Action, f64)> = [
            (Action::Reject, a.reject.0),
            (Action::RewriteSubject, a.rewrite_subject.0),
            (Action::AddHeader, a.add_header.0),
            (Action::Greylist, a.greylist.0),
        ]
        .into_iter()
        .filter_map(|(act, t)| t.map(|t| (act, t)))
        .collect();
        v.sort_by(|x, y| y.1.partial_cmp(&x.1).unwrap_or(std::cmp::Ordering::Equal));
        v
    }

    /// Turns the raw results of the checks into a verdict.
    pub fn finalize(&self, results: ScanResults) -> Verdict {
        let mut symbols = BTreeMap::new();
        let mut group_totals: HashMap<&str, f64> = HashMap::new();
        let mut score = 0.0;
        for hit in results.hits {
            let (weight, group, description) = match self.symbols.get(&hit.name) {
                Some(d) => (d.weight, d.group.as_str(), Some(d.description.clone())),
                None => (0.0, "", None),
            };
            let mut s = weight * hit.factor;
            if let Some(cap) = self.group_caps.get(group) {
                let so_far = group_totals.entry(group).or_insert(0.0);
                if s > 0.0 {
                    s = s.min((cap - *so_far).max(0.0));
                }
                *so_far += s;
            }
            score += s;
            symbols.insert(
                hit.name.clone(),
                SymbolResult {
                    name: hit.name,
                    score: round2(s),
                    description: description.filter(|d| !d.is_empty()),
                    options: hit.options,
                },
            );
        }
        let score = round2(score);
        let mut messages = BTreeMap::new();
        let (action, forced_by) = match results.forced {
            Some(f) => {
                if let Some(m) = f.message {
                    messages.insert("smtp_message".to_string(), m);
                }
                (f.action, Some(f.symbol))
            }
            None => (
                self.thresholds()
                    .into_iter()
                    .find(|(_, t)| score >= *t)
                    .map_or(Action::NoAction, |(a, _)| a),
                None,
            ),
        };
        Verdict {
            action,
            score,
            required_score: self.required_score(),
            symbols,
            messages,
            is_skipped: results.skipped,
            forced_by,
            add_headers: Vec::new(),
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A symbol hit before weighting.
#[derive(Debug, Clone)]
pub struct Hit {
    pub name: String,
    /// Multiplies the symbol's weight: 1.0 for ordinary symbols, a
    /// probability-like factor for dynamic ones such as the classifier's.
    pub factor: f64,
    pub options: Vec<String>,
}

/// An action a check imposes whatever the score.
#[derive(Debug, Clone)]
pub struct Forced {
    pub action: Action,
    pub message: Option<String>,
    pub symbol: String,
}

/// What the checks of one scan have found so far.
#[derive(Debug, Clone, Default)]
pub struct ScanResults {
    pub hits: Vec<Hit>,
    pub forced: Option<Forced>,
    /// Set when a prefilter decided and later checks must not run.
    pub skipped: bool,
}

impl ScanResults {
    /// Records a symbol; a second hit of the same symbol adds its options.
    pub fn insert(&mut self, name: &str, options: Vec<String>) {
        self.insert_scaled(name, 1.0, options);
    }

    pub fn insert_scaled(&mut self, name: &str, factor: f64, options: Vec<String>) {
        if let Some(h) = self.hits.iter_mut().find(|h| h.name == name) {
            for o in options {
                if !h.options.contains(&o) && h.options.len() < 32 {
                    h.options.push(o);
                }
            }
            h.factor = h.factor.max(factor);
            return;
        }
        self.hits.push(Hit {
            name: name.to_string(),
            factor,
            options,
        });
    }

    pub fn has(&self, name: &str) -> bool {
        self.hits.iter().any(|h| h.name == name)
    }

    /// Forces an action. A stronger action replaces a weaker one, so a reject
    /// from one check is never softened by another; an accept never overrides
    /// a forced action that is already set.
    pub fn force(&mut self, action: Action, message: Option<String>, symbol: &str) {
        let replace = match &self.forced {
            None => true,
            Some(f) => action > f.action,
        };
        if replace {
            self.forced = Some(Forced {
                action,
                message,
                symbol: symbol.to_string(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GroupConfig, SymbolOverride, Threshold};

    fn table(config: &Config) -> SymbolTable {
        let mut t = SymbolTable::new(config);
        t.register(SymbolDef::new("A", 3.0, "g", "a"), config);
        t.register(SymbolDef::new("B", 4.0, "g", "b"), config);
        t.register(SymbolDef::new("C", 5.0, "other", "c"), config);
        t
    }

    fn hits(names: &[&str]) -> ScanResults {
        let mut r = ScanResults::default();
        for n in names {
            r.insert(n, vec![]);
        }
        r
    }

    #[test]
    fn default_thresholds_pick_the_highest_reached() {
        let c = Config::default();
        let t = table(&c);
        assert_eq!(t.finalize(hits(&[])).action, Action::NoAction);
        assert_eq!(t.finalize(hits(&["A"])).action, Action::NoAction);
        assert_eq!(t.finalize(hits(&["B"])).action, Action::Greylist);
        assert_eq!(t.finalize(hits(&["A", "B"])).action, Action::AddHeader);
        assert_eq!(t.finalize(hits(&["A", "B", "C"])).action, Action::AddHeader);
        let v = t.finalize(hits(&["A", "B", "C", "C"]));
        assert_eq!(v.score, 12.0);
        assert_eq!(v.required_score, 15.0);
    }

    #[test]
    fn overrides_caps_and_disabled_actions() {
        let mut c = Config::default();
        c.symbols.insert(
            "C".into(),
            SymbolOverride {
                score: Some(20.0),
                ..Default::default()
            },
        );
        c.groups.insert(
            "g".into(),
            GroupConfig {
                max_score: Some(5.0),
                ..Default::default()
            },
        );
        c.actions.reject = Threshold(None);
        let t = table(&c);
        let v = t.finalize(hits(&["A", "B"]));
        assert_eq!(v.score, 5.0, "group g is capped at 5");
        assert_eq!(v.symbols["B"].score, 2.0);
        let v = t.finalize(hits(&["C"]));
        assert_eq!(v.action, Action::AddHeader, "reject is disabled");
        assert_eq!(v.required_score, 6.0);
    }

    #[test]
    fn forced_actions_win_and_stronger_wins() {
        let c = Config::default();
        let t = table(&c);
        let mut r = hits(&["A"]);
        r.force(Action::NoAction, None, "WL");
        r.force(Action::Reject, Some("go away".into()), "BL");
        r.force(Action::SoftReject, None, "X");
        let v = t.finalize(r);
        assert_eq!(v.action, Action::Reject);
        assert_eq!(v.smtp_message(), Some("go away"));
        assert_eq!(v.forced_by.as_deref(), Some("BL"));
    }

    #[test]
    fn repeated_symbols_merge_options() {
        let mut r = ScanResults::default();
        r.insert("A", vec!["x".into()]);
        r.insert("A", vec!["y".into(), "x".into()]);
        assert_eq!(r.hits.len(), 1);
        assert_eq!(r.hits[0].options, vec!["x", "y"]);
    }
}
