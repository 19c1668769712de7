//! `jetlog server check server`: one server's `VARZ`, asked of the server by name through the
//! system account; and `server check credential`: a credentials file's user JWT and its
//! expiry. Both judged as natscli judges them.

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use super::server_check::{connected, CredentialCheck, Outcome, ServerCheck};
use crate::jetstream::time::parse_rfc3339;
use crate::server::jwt::{self, UserClaims};

/// A duration as natscli's messages print one: `1d2h3m4s`, fractional seconds to two
/// decimals.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, mins) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    let rest = d.as_secs_f64() % 60.0;
    let mut out = String::new();
    for (n, unit) in [(days, "d"), (hours, "h"), (mins, "m")] {
        if n > 0 || !out.is_empty() {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    match rest.fract() == 0.0 {
        true => out.push_str(&format!("{rest:.0}s")),
        false => out.push_str(&format!("{rest:.2}s")),
    }
    out
}

/// One threshold check: a ceiling, or a floor (`floor_ok` and critical below warning).
fn judge(outcome: &mut Outcome, name: &str, (crit, warn): (f64, f64), value: f64, floor_ok: bool) {
    if crit == 0.0 && warn == 0.0 {
        return;
    }
    if !floor_ok && crit < warn {
        outcome.critical(format!("{name} invalid thresholds"));
        return;
    }
    let (critical, warned) = match floor_ok && crit < warn {
        true => (value <= crit, value <= warn),
        false => (value >= crit, value >= warn),
    };
    let text = format!("{name} {value:.2}");
    match (critical, warned) {
        (true, _) => outcome.critical(text),
        (false, true) => outcome.warn(text),
        _ => outcome.ok(text),
    }
}

pub(super) async fn server(args: ServerCheck) -> Result<()> {
    let mut outcome = Outcome::new_named(args.name.clone(), "server");
    let format = args.out.format;
    let Some(client) = connected(&mut outcome, &args.out.common).await else {
        return outcome.finish(format);
    };
    let filter = json!({ "name": args.name }).to_string();
    let asked = client.request("$SYS.REQ.SERVER.PING.VARZ", filter.into());
    let reply = match tokio::time::timeout(args.out.common.timeout, asked).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => {
            outcome.critical(format!("varz failed: {e}"));
            return outcome.finish(format);
        }
        Err(_) => {
            outcome.critical("varz failed: timeout".to_string());
            return outcome.finish(format);
        }
    };
    let answer: Value = serde_json::from_slice(&reply.payload).unwrap_or_default();
    if let Some(error) = answer["error"]["description"].as_str() {
        outcome.critical(format!("varz failed: invalid response received: {error:?}"));
        return outcome.finish(format);
    }
    let varz = &answer["data"];
    if varz.is_null() {
        outcome.critical("no data received".to_string());
        return outcome.finish(format);
    }
    let name = varz["server_name"].as_str().unwrap_or_default();
    if name != args.name {
        outcome.critical(format!("result from wrong server {name:?}"));
    }
    if args.js_required {
        match varz["jetstream"]["config"].is_null() {
            true => outcome.critical("JetStream not enabled".to_string()),
            false => outcome.ok("JetStream enabled".to_string()),
        }
    }
    if args.tls_required {
        match varz["tls_required"] == true {
            true => outcome.ok("TLS required".to_string()),
            false => outcome.critical("TLS not required".to_string()),
        }
    }
    if args.auth_required {
        match varz["auth_required"] == true {
            true => outcome.ok("Authentication required".to_string()),
            false => outcome.critical("Authentication not required".to_string()),
        }
    }
    let time = |key: &str| {
        varz[key]
            .as_str()
            .and_then(|t| parse_rfc3339(t).ok().flatten())
            .unwrap_or(0)
    };
    let up = Duration::from_nanos(time("now").saturating_sub(time("start")).max(0) as u64);
    let (up_warn, up_crit) = (
        args.uptime_warn.unwrap_or_default(),
        args.uptime_critical.unwrap_or_default(),
    );
    if !up_warn.is_zero() || !up_crit.is_zero() {
        if up_crit > up_warn {
            outcome.critical("Up invalid thresholds".to_string());
            return outcome.finish(format);
        }
        let text = format!("Up {}", human(up));
        match () {
            _ if up <= up_crit => outcome.critical(text),
            _ if up <= up_warn => outcome.warn(text),
            _ => outcome.ok(text),
        }
    }
    let number = |key: &str| varz[key].as_f64().unwrap_or(0.0);
    let (cpu, mem) = (number("cpu"), number("mem"));
    let (conns, subs) = (number("connections"), number("subscriptions"));
    let secs = |d: Duration| d.as_secs_f64();
    outcome.perf(
        "uptime",
        up.as_secs_f64(),
        secs(up_warn),
        secs(up_crit),
        "s",
    );
    let pairs = |w: u64, c: u64| (w as f64, c as f64);
    let (cw, cc) = pairs(args.cpu_warn, args.cpu_critical);
    let (mw, mc) = pairs(args.mem_warn, args.mem_critical);
    let (nw, nc) = pairs(args.conn_warn, args.conn_critical);
    let (sw, sc) = pairs(args.subs_warn, args.subs_critical);
    outcome.perf("cpu", cpu, cw, cc, "%");
    outcome.perf("mem", mem, mw, mc, "");
    outcome.perf("connections", conns, nw, nc, "");
    outcome.perf("subscriptions", subs, sw, sc, "");
    judge(&mut outcome, "CPU", (cc, cw), cpu, false);
    judge(&mut outcome, "Memory", (mc, mw), mem, false);
    judge(&mut outcome, "Connections", (nc, nw), conns, true);
    judge(&mut outcome, "Subscriptions", (sc, sw), subs, true);
    outcome.finish(format)
}

/// The JWT of a credentials file: between its `-----BEGIN … JWT-----` and `------END …`
/// lines, or the whole text when it has no such block (nkeys' `ParseDecoratedJWT`).
fn decorated_jwt(text: &str) -> &str {
    let mut lines = text.lines().map(str::trim);
    let block = lines
        .by_ref()
        .find(|l| l.starts_with("---") && l.contains("BEGIN") && l.contains("JWT"))
        .and_then(|_| lines.find(|l| !l.is_empty()));
    block.unwrap_or(text.trim())
}

pub(super) fn credential(args: CredentialCheck) -> Result<()> {
    let mut outcome = Outcome::new("Credential", "credential");
    let text = match std::fs::read_to_string(&args.credential) {
        Ok(text) => text,
        Err(e) => {
            outcome.critical(format!("credential not accessible: {e}"));
            return outcome.finish(args.format);
        }
    };
    let claims = match jwt::decode::<UserClaims>(decorated_jwt(&text)) {
        Ok(claims) => claims,
        Err(e) => {
            outcome.critical(format!("invalid credential: {e}"));
            return outcome.finish(args.format);
        }
    };
    let until = claims.exp - jwt::now_secs();
    let secs = |d: Option<Duration>| d.map_or(0, |d| d.as_secs() as i64);
    let (warn, crit) = (secs(args.validity_warn), secs(args.validity_critical));
    outcome.perf("expiry", until as f64, warn as f64, crit as f64, "s");
    match () {
        _ if claims.exp == 0 && args.require_expiry => outcome.critical("never expires".into()),
        _ if crit > 0 && until <= crit => outcome.critical(format!(
            "expires sooner than {}",
            human(Duration::from_secs(crit as u64))
        )),
        _ if warn > 0 && until <= warn => outcome.warn(format!(
            "expires sooner than {}",
            human(Duration::from_secs(warn as u64))
        )),
        _ if claims.exp == 0 => outcome.ok("never expires".into()),
        _ => {
            let at = crate::jetstream::time::format_rfc3339(Some(
                claims.exp.saturating_mul(1_000_000_000),
            ));
            outcome.ok(format!("expires in {at}"))
        }
    }
    outcome.finish(args.format)
}
