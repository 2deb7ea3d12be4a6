//! The dead-letter queue is declared bounded, and one declared unbounded by an older version
//! keeps working.

use super::*;

#[tokio::test]
async fn the_dead_letter_queue_is_bounded_and_an_unbounded_one_from_before_keeps_working() {
    use lapin::{
        options::QueueDeclareOptions,
        types::{AMQPValue, FieldTable, ShortString},
    };
    let env = TestEnv::new().await;
    let conn = amqp::connect(&env.config.amqp_url, "test")
        .await
        .expect("RabbitMQ is up");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let mut unbounded = FieldTable::default();
    unbounded.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString("quorum".into()),
    );
    // The queue TestEnv declared carries the bound: the same arguments are equivalent, none are not.
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(
        env.names.dead_queue.as_str().into(),
        durable,
        amqp::dead_queue_arguments(),
    )
    .await
    .expect("the bounded declaration is equivalent");
    let ch = conn.create_channel().await.expect("channel");
    assert!(
        ch.queue_declare(env.names.dead_queue.as_str().into(), durable, unbounded.clone())
            .await
            .is_err(),
        "an unbounded declaration is refused, so the bound is on the queue"
    );

    // A deployment from before the bound: its unbounded queue is kept, and declaring again
    // neither fails nor closes anyone else's channel.
    let old = amqp::Names::new(&format!("{}_old", env.config.namespace));
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(old.dead_queue.as_str().into(), durable, unbounded)
        .await
        .expect("old-style queue");
    assert_eq!(
        amqp::declare_dead_queue(&conn, &old).await.expect("no error"),
        amqp::DeadQueue::ExistingUnbounded
    );
    assert!(ch.status().connected(), "the caller's channel stays open");
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare(old.dead_queue.as_str().into(), passive, FieldTable::default())
        .await
        .expect("the old queue is still there");
    let _ = ch
        .queue_delete(old.dead_queue.as_str().into(), Default::default())
        .await;
    amqp::close(&conn, 200, "done").await;
    env.cleanup().await;
}
