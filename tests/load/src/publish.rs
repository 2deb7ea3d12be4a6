//! What the load tool publishes: the healthy load (`load.test`, paced by `--rate`, at most
//! 2,000 confirms outstanding) and the black-hole webhooks' events queued before it.

use std::time::{Duration, Instant};

use hookrelay_shared::amqp;
use lapin::{BasicProperties, options::BasicPublishOptions};

use crate::{Args, receiver::now_us};

/// Publishes the healthy load (`--events` of `load.test`, paced by `--rate`).
pub async fn load(
    args: &Args,
    publisher: &lapin::Channel,
    names: &amqp::Names,
    suffix: &str,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut outstanding = std::collections::VecDeque::new();
    for i in 0..args.events {
        if args.rate > 0 {
            let due = Duration::from_secs_f64(i as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let body = serde_json::json!({
            "id": format!("evt_load_{suffix}_{i}"),
            "type": "load.test",
            "data": {"sent_at_us": now_us(), "i": i},
        });
        let confirm = publisher
            .basic_publish(
                names.events_exchange.as_str().into(),
                "load.test".into(),
                BasicPublishOptions::default(),
                body.to_string().as_bytes(),
                BasicProperties::default()
                    .with_content_type("application/json".into())
                    .with_delivery_mode(2),
            )
            .await?;
        outstanding.push_back(confirm);
        while outstanding.len() > 2000 {
            if let Some(c) = outstanding.pop_front() {
                c.await?;
            }
        }
    }
    for c in outstanding {
        c.await?;
    }
    Ok(())
}

/// Publishes `--black-hole-events` events to each black-hole webhook, before the healthy load.
pub async fn black_hole_load(
    args: &Args,
    publisher: &lapin::Channel,
    names: &amqp::Names,
    suffix: &str,
) -> anyhow::Result<()> {
    let mut confirms = Vec::new();
    for h in 0..args.black_holes {
        for i in 0..args.black_hole_events {
            let body = serde_json::json!({
                "id": format!("evt_hole_{suffix}_{h}_{i}"),
                "type": format!("hole.t{h}"),
                "data": {"i": i},
            });
            confirms.push(
                publisher
                    .basic_publish(
                        names.events_exchange.as_str().into(),
                        format!("hole.t{h}").as_str().into(),
                        BasicPublishOptions::default(),
                        body.to_string().as_bytes(),
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await?,
            );
        }
    }
    for c in confirms {
        c.await?;
    }
    println!(
        "published {} events to {} black-hole webhook(s) first",
        args.black_holes * args.black_hole_events,
        args.black_holes
    );
    Ok(())
}
