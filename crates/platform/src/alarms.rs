//! Alarm feeds (`/whisk.system/alarms/alarm`, `interval`, `once`) and the scheduler that
//! fires their triggers. The feed actions follow OpenWhisk's feed lifecycle protocol: they
//! are invoked with `lifecycleEvent` (CREATE, READ, UPDATE, DELETE, PAUSE, UNPAUSE),
//! `triggerName` and `authKey`, plus the feed's own parameters (`cron`, `minutes`, `date`,
//! `trigger_payload`, `startDate`, `stopDate`). Alarms are stored in SQLite, so they survive
//! a restart; the scheduler wakes at every second boundary and fires what is due through
//! the same trigger path as `POST /triggers/{name}`.

use crate::cron::{parse_instant, Cron};
use crate::entity::{collection, Alarm, Trigger};
use crate::model::now_ms;
use crate::names::EntityPath;
use crate::Platform;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Longest `interval`, minutes (ten years).
pub const MAX_INTERVAL_MINUTES: u64 = 5_256_000;

fn text(params: &Map<String, Value>, key: &str) -> Option<String> {
    params.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Apply the feed parameters in `params` to `alarm` and validate the result.
fn configure(alarm: &mut Alarm, params: &Map<String, Value>) -> Result<(), String> {
    if let Some(c) = params.get("cron") {
        let c = c.as_str().ok_or("The cron parameter must be a string.")?;
        Cron::parse(c)?;
        alarm.cron = Some(c.to_string());
    }
    if let Some(m) = params.get("minutes") {
        let m = m
            .as_u64()
            .filter(|m| (1..=MAX_INTERVAL_MINUTES).contains(m))
            .ok_or("The minutes parameter must be an integer from 1 to 5256000 (ten years).")?;
        alarm.minutes = Some(m);
    }
    if let Some(d) = params.get("date") {
        alarm.date = Some(parse_instant(d)?);
    }
    if let Some(d) = params.get("startDate") {
        alarm.start = Some(parse_instant(d)?);
    }
    if let Some(d) = params.get("stopDate") {
        alarm.stop = Some(parse_instant(d)?);
    }
    match params.get("trigger_payload") {
        None => {}
        Some(Value::Object(m)) => alarm.payload = m.clone(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => alarm.payload = m,
            _ => return Err("The trigger_payload parameter must be a JSON object.".into()),
        },
        Some(_) => return Err("The trigger_payload parameter must be a JSON object.".into()),
    }
    match alarm.feed.as_str() {
        "alarm" if alarm.cron.is_none() => Err("The alarm feed needs a cron parameter.".into()),
        "interval" if alarm.minutes.is_none() => {
            Err("The interval feed needs a minutes parameter.".into())
        }
        "once" if alarm.date.is_none() => Err("The once feed needs a date parameter.".into()),
        _ => match (alarm.start, alarm.stop) {
            (Some(a), Some(b)) if a >= b => {
                Err("The startDate must be before the stopDate.".into())
            }
            _ => Ok(()),
        },
    }
}

/// Handle one lifecycle event of feed `feed` invoked by `caller`.
pub(crate) fn lifecycle(
    p: &Arc<Platform>,
    feed: &str,
    caller: &str,
    params: Map<String, Value>,
) -> Result<Value, String> {
    let event = text(&params, "lifecycleEvent")
        .ok_or("The lifecycleEvent parameter is required (CREATE, READ, UPDATE, DELETE, PAUSE, UNPAUSE).")?
        .to_ascii_uppercase();
    let trigger_name =
        text(&params, "triggerName").ok_or("The triggerName parameter is required.")?;
    let auth = text(&params, "authKey").ok_or("The authKey parameter is required.")?;
    let (uuid, key) = auth
        .split_once(':')
        .ok_or("The authKey is not a valid uuid:key.")?;
    let owner = p
        .store
        .authenticate(uuid, key)
        .map_err(|e| format!("Cannot check the authKey: {e}"))?
        .ok_or("The authKey is not valid.")?;
    let trigger = EntityPath::parse(&trigger_name, &owner)?;
    if trigger.namespace != owner || owner != caller || trigger.package.is_some() {
        return Err(format!(
            "The trigger '{trigger}' is not in the namespace of the authKey."
        ));
    }
    let stored = p
        .store
        .get_entity::<Alarm>(collection::ALARMS, &owner, &trigger.name)
        .map_err(|e| e.to_string())?
        .map(|s| s.doc)
        .filter(|a| a.feed == feed);
    let save = |a: &Alarm| {
        p.store
            .put_entity(collection::ALARMS, &owner, &trigger.name, a, true)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let missing = || format!("No {feed} feed is attached to the trigger '{trigger}'.");
    match event.as_str() {
        "CREATE" => {
            if p
                .store
                .get_entity::<Trigger>(collection::TRIGGERS, &owner, &trigger.name)
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(format!("The trigger '{trigger}' does not exist."));
            }
            let mut a = Alarm {
                trigger: trigger.clone(),
                feed: feed.to_string(),
                cron: None,
                minutes: None,
                date: None,
                start: None,
                stop: None,
                payload: Map::new(),
                active: true,
                created: now_ms(),
                last_fired: None,
            };
            configure(&mut a, &params)?;
            if feed == "once" && a.date.is_some_and(|d| d <= now_ms()) {
                return Err("The date must be in the future.".into());
            }
            save(&a)?;
            Ok(json!({}))
        }
        "READ" => {
            let a = stored.ok_or_else(missing)?;
            Ok(json!({
                "config": {
                    "name": trigger.name, "namespace": owner, "cron": a.cron, "minutes": a.minutes,
                    "date": a.date.map(crate::cron::iso8601),
                    "startDate": a.start.map(crate::cron::iso8601),
                    "stopDate": a.stop.map(crate::cron::iso8601),
                    "payload": a.payload,
                },
                "status": {
                    "active": a.active,
                    "lastFired": a.last_fired.map(crate::cron::iso8601),
                },
            }))
        }
        "UPDATE" => {
            let mut a = stored.ok_or_else(missing)?;
            configure(&mut a, &params)?;
            save(&a)?;
            Ok(json!({}))
        }
        "PAUSE" | "UNPAUSE" => {
            let mut a = stored.ok_or_else(missing)?;
            a.active = event == "UNPAUSE";
            save(&a)?;
            Ok(json!({}))
        }
        "DELETE" => {
            stored.ok_or_else(missing)?;
            p.store
                .delete_entity(collection::ALARMS, &owner, &trigger.name)
                .map_err(|e| e.to_string())?;
            Ok(json!({}))
        }
        other => Err(format!(
            "The lifecycleEvent '{other}' is not one of CREATE, READ, UPDATE, DELETE, PAUSE, UNPAUSE."
        )),
    }
}

/// Whether `a` fires in the second starting at `now` (ms, a whole second).
pub fn due(a: &Alarm, now: i64) -> bool {
    if !a.active
        || a.start.is_some_and(|s| now < s)
        || a.stop.is_some_and(|s| now > s)
        || a.last_fired.is_some_and(|l| l >= now)
    {
        return false;
    }
    match a.feed.as_str() {
        "alarm" => a
            .cron
            .as_deref()
            .and_then(|c| Cron::parse(c).ok())
            .is_some_and(|c| c.matches(now.div_euclid(1000))),
        "interval" => {
            let period = a.minutes.unwrap_or(1) as i64 * 60_000;
            let from = a.last_fired.or(a.start).unwrap_or(a.created);
            now >= from + period
        }
        "once" => a.last_fired.is_none() && a.date.is_some_and(|d| now >= d),
        _ => false,
    }
}

/// The scheduler: at every second boundary, fire every due alarm's trigger.
pub async fn run(p: Arc<Platform>) {
    loop {
        let now = now_ms();
        let next = (now / 1000 + 1) * 1000;
        tokio::time::sleep(Duration::from_millis((next - now).max(1) as u64)).await;
        let store = p.store.clone();
        let alarms = match tokio::task::spawn_blocking(move || {
            store.list_entities::<Alarm>(collection::ALARMS, None, u32::MAX, 0)
        })
        .await
        {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read alarms");
                continue;
            }
            Err(_) => continue,
        };
        for stored in alarms {
            let mut a = stored.doc;
            if !due(&a, next) {
                continue;
            }
            a.last_fired = Some(next);
            let ns = a.trigger.namespace.clone();
            let name = a.trigger.name.clone();
            if let Err(e) = p.store.put_entity(collection::ALARMS, &ns, &name, &a, true) {
                tracing::error!(error = %e, "cannot record an alarm firing");
                continue;
            }
            match crate::api::triggers::fire(&p, &ns, &name, a.payload.clone()).await {
                Ok(id) => tracing::debug!(trigger = %a.trigger, activation = ?id, "alarm fired"),
                Err(e) => {
                    tracing::warn!(trigger = %a.trigger, error = %e.1, "alarm could not fire")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(feed: &str) -> Alarm {
        Alarm {
            trigger: EntityPath::new("guest", None, "t"),
            feed: feed.into(),
            cron: None,
            minutes: None,
            date: None,
            start: None,
            stop: None,
            payload: Map::new(),
            active: true,
            created: 1_000_000,
            last_fired: None,
        }
    }

    #[test]
    fn schedules() {
        let mut a = alarm("alarm");
        let p = json!({"cron": "*/2 * * * * *", "trigger_payload": {"x": 1}});
        configure(&mut a, p.as_object().expect("object")).expect("valid");
        assert!(due(&a, 1_000_000) && !due(&a, 1_001_000));
        a.last_fired = Some(1_000_000);
        assert!(!due(&a, 1_000_000), "never twice in one second");
        a.active = false;
        assert!(!due(&a, 1_002_000), "paused");
        let mut o = alarm("once");
        configure(&mut o, json!({"date": 5_000}).as_object().expect("o")).expect("valid");
        assert!(!due(&o, 4_000) && due(&o, 5_000));
        o.last_fired = Some(5_000);
        assert!(!due(&o, 6_000), "once is once");
        let mut i = alarm("interval");
        configure(&mut i, json!({"minutes": 1}).as_object().expect("o")).expect("valid");
        assert!(!due(&i, 1_059_000) && due(&i, 1_060_000));
        let mut bad = alarm("alarm");
        for p in [
            json!({}),
            json!({"cron": "61 * * * *"}),
            json!({"cron": 5}),
            json!({"cron": "* * * * *", "startDate": 10, "stopDate": 5}),
            json!({"cron": "* * * * *", "trigger_payload": [1]}),
            json!({"minutes": u64::MAX}),
        ] {
            assert!(
                configure(&mut bad, p.as_object().expect("o")).is_err(),
                "{p}"
            );
            bad = alarm("alarm");
        }
    }
}
