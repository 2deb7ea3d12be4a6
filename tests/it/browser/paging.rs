//! Search, category, sort by response code and paging give exactly the API's pages.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_category_filter_sort_by_response_code_and_paging_show_the_same_rows_as_the_api() {
    let mut sys = System::new().await;
    let admin = sys.token(Role::Admin).await;
    let ok = Receiver::start().await;
    let boom = Receiver::start_with(|_| Reply::status(500, "boom")).await;
    let missing = Receiver::start_with(|_| Reply::status(404, "no such hook")).await;
    sys.webhook("Shop EU", &ok.url("/eu"), &["license.*", "activation.*"])
        .await;
    sys.webhook("Shop US", &boom.url("/us"), &["*"]).await;
    sys.webhook(
        "Partner portal",
        &missing.url("/partner"),
        &["license.*", "product.*"],
    )
    .await;
    sys.run().await;
    for n in 0..4 {
        sys.publish("license.assigned", json!({"n": n})).await;
    }
    sys.publish("activation.created", json!({"n": 1})).await;
    sys.publish("product.updated", json!({"n": 1})).await;
    // license: 3 × 4, activation: 2, product: 2.
    sys.wait_for_attempts(&admin, 16).await;

    let b = Browser::start(&sys.base).await;
    b.open(&format!("{PAGE}?limit=3")).await;
    b.sign_in(&admin).await;
    b.settled().await;
    let options = b
        .js("return [...document.querySelectorAll('#f-category option')].map(o => o.value).join();")
        .await;
    for c in ["license", "activation", "product"] {
        assert!(
            options.as_str().unwrap_or_default().contains(c),
            "category {c} is offered: {options}"
        );
    }
    b.search("shop").await;
    b.wait(
        "the search is applied",
        "return location.search.includes('q=shop')",
    )
    .await;
    b.settled().await;
    b.select("#f-category", "license").await;
    b.wait(
        "the category is applied",
        "return location.search.includes('category=license')",
    )
    .await;
    b.settled().await;
    b.click("th[data-sort='response_code'] button").await;
    b.wait(
        "the sort is applied",
        "return location.search.includes('sort=response_code')",
    )
    .await;
    b.settled().await;
    let sort = b
        .js("return document.querySelector(\"th[data-sort='response_code']\").getAttribute('aria-sort');")
        .await;
    assert_eq!(sort, "descending");

    let expected = sys
        .pages(
            &admin,
            "q=shop&category=license&sort=response_code&order=desc&limit=3",
        )
        .await;
    assert_eq!(
        expected.iter().map(Vec::len).sum::<usize>(),
        8,
        "Shop EU and Shop US, four license events each"
    );
    assert!(expected.len() >= 3, "three pages of three");
    for (n, page) in expected.iter().enumerate() {
        if n > 0 {
            b.click("#next").await;
            b.wait(&format!("page {} is shown", n + 1), &format!(
                "return document.getElementById('page-label').textContent === 'Page {}' && !document.getElementById('log').hasAttribute('aria-busy')",
                n + 1
            ))
            .await;
            b.settled().await;
        }
        let rows = b.rows().await;
        assert_eq!(row_ids(&rows), ids(page), "page {} matches the API", n + 1);
        assert!(
            rows.iter()
                .all(|r| r.webhook.starts_with("Shop") && r.event_type.starts_with("license.")),
            "{rows:?}"
        );
    }
    assert!(
        b.el("#next")
            .await
            .prop("disabled")
            .await
            .expect("prop")
            .as_deref()
            == Some("true"),
        "no page after the last"
    );
    let codes: Vec<String> = expected
        .concat()
        .iter()
        .map(|i| i["response_code"].to_string())
        .collect();
    assert_eq!(
        codes.first().map(String::as_str),
        Some("500"),
        "500s first when sorted descending: {codes:?}"
    );

    // Previous walks back through the cursor stack; the browser's Back button restores the
    // page it came from.
    let last = expected.len();
    b.click("#prev").await;
    b.wait(
        "the previous page is shown",
        &format!(
            "return document.getElementById('page-label').textContent === 'Page {}'",
            last - 1
        ),
    )
    .await;
    b.settled().await;
    assert_eq!(row_ids(&b.rows().await), ids(&expected[last - 2]));
    b.d().back().await.expect("back");
    b.wait(
        "Back returns to the last page",
        &format!("return document.getElementById('page-label').textContent === 'Page {last}'"),
    )
    .await;
    b.settled().await;
    assert_eq!(row_ids(&b.rows().await), ids(&expected[last - 1]));

    // Reversing the sort gives the API's ascending order.
    b.click("th[data-sort='response_code'] button").await;
    b.wait(
        "the sort is reversed",
        "return location.search.includes('order=asc')",
    )
    .await;
    b.settled().await;
    let sort = b
        .js("return document.querySelector(\"th[data-sort='response_code']\").getAttribute('aria-sort');")
        .await;
    assert_eq!(sort, "ascending");
    let asc = sys
        .pages(
            &admin,
            "q=shop&category=license&sort=response_code&order=asc&limit=3",
        )
        .await;
    assert_eq!(row_ids(&b.rows().await), ids(&asc[0]));

    // A shared link (filters, sort and cursor, never the token) opens the same rows.
    let url = b.url().await;
    assert!(
        !url.contains(&admin) && !url.contains("hr_"),
        "the token is never in the URL: {url}"
    );
    b.open(&url[sys.base.len()..]).await;
    b.settled().await;
    assert_eq!(row_ids(&b.rows().await), ids(&asc[0]));
    assert_eq!(b.js("return document.getElementById('f-q').value").await, "shop");
    assert_eq!(
        b.js("return document.getElementById('f-category').value").await,
        "license"
    );
    b.screenshot("filtered-sorted").await;

    // Narrow window: rows stack as cards (the header row of the table is hidden).
    b.d().set_window_rect(0, 0, 420, 900).await.expect("resize");
    b.wait(
        "the table stacks",
        "return getComputedStyle(document.querySelector('#rows td')).display === 'grid'",
    )
    .await;
    b.screenshot("narrow").await;

    b.quit().await;
    sys.stop().await;
}
