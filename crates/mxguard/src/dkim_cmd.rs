//! `mxguard dkim keygen`: a DKIM key pair for `[dkim_signing]`, and the DNS
//! records to publish.

use clap::{Subcommand, ValueEnum};
use mxguard_auth::keygen::{self, Request};
use mxguard_auth::keys::KeyKind;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum DkimCommand {
    /// Generate a key: the private key is written with mode 0600 to
    /// DIR/<domain>.<selector>.key; the TXT record to publish is printed,
    /// with a suggested SPF and DMARC record.
    Keygen(KeygenArgs),
}

#[derive(Clone, Copy, Default, ValueEnum)]
pub enum KeyType {
    #[default]
    Rsa,
    Ed25519,
}

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// The signing domain (d=).
    #[arg(long)]
    domain: String,
    /// The selector (s=): the record goes at <selector>._domainkey.<domain>.
    #[arg(long, default_value = "dkim")]
    selector: String,
    /// Key type. Ed25519 keys are small but not every receiver checks them:
    /// sign with an RSA key beside one.
    #[arg(long = "type", value_enum, default_value_t)]
    kind: KeyType,
    /// RSA key size in bits (2048 to 4096).
    #[arg(long, default_value_t = 2048)]
    bits: usize,
    /// Directory for the private key.
    #[arg(long = "out", value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Replace an existing key file (its published record stops matching).
    #[arg(long)]
    force: bool,
}

pub fn run(cmd: DkimCommand) -> Result<ExitCode, String> {
    match cmd {
        DkimCommand::Keygen(a) => {
            let g = keygen::generate(&Request {
                domain: a.domain.clone(),
                selector: a.selector.clone(),
                kind: match a.kind {
                    KeyType::Rsa => KeyKind::Rsa,
                    KeyType::Ed25519 => KeyKind::Ed25519,
                },
                bits: a.bits,
                out_dir: a.out,
                force: a.force,
            })?;
            let domain = a.domain.trim_end_matches('.').to_ascii_lowercase();
            eprintln!("private key written to {} (mode 0600)", g.path.display());
            println!("; DKIM key: publish in the zone of {domain}");
            println!("{}", g.zone_line);
            println!();
            println!("; suggested SPF (list every host that sends for {domain})");
            println!("{}", g.spf);
            println!(
                "; suggested DMARC (start with p=none, read the reports, then quarantine or reject)"
            );
            println!("{}", g.dmarc);
            println!();
            println!("; mxguard.toml");
            println!("[dkim_signing]");
            println!("enabled = true");
            println!("[dkim_signing.domain.\"{domain}\"]");
            println!("selector = \"{}\"", a.selector);
            println!("path = \"{}\"", g.path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
