//! The four admin pages put together from one layout: `assets/layout.html` holds what every
//! page shares (the head, the navigation, the sign-in and forbidden views, the toasts and the
//! confirmation dialog); each page's file holds only its own view and dialogs, and takes the
//! pieces several pages repeat from `assets/parts/` (`{{part name=value|…}}`). The pages are
//! rendered once, when the router is built, so serving one costs no more than a static file.

use sha2::{Digest, Sha256};

use super::Assets;

/// One admin page: where it is served, its file in `assets/`, and what the layout shows of it.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// The page's path (also its link in the navigation).
    pub path: &'static str,
    /// Its own part in `assets/`: the view, then `<!-- dialogs -->` and its dialogs, if any.
    pub file: &'static str,
    /// The title in the tab and beside the logo.
    pub title: &'static str,
    /// Its label in the navigation.
    pub nav: &'static str,
    /// Its ES module in `assets/`.
    pub script: &'static str,
}

/// The line of a page's file after which its dialogs come (they go outside `<main>`).
const DIALOGS: &str = "<!-- dialogs -->\n";

/// A page as served: the whole document and its ETag.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub html: String,
    pub etag: String,
}

/// Why a page could not be put together (a packaging mistake; the unit tests render every page).
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("admin asset {0} is missing or not UTF-8")]
    Missing(String),
    #[error("{0} has an unknown or unclosed placeholder near `{1}`")]
    Placeholder(String, String),
}

/// The whole document of `page`, with `pages` in its navigation (the page itself marked current).
pub fn render(page: &Page, pages: &[Page]) -> Result<Rendered, LayoutError> {
    let layout = text("layout.html")?;
    let own = with_parts(page.file)?;
    let (main, dialogs) = own.split_once(DIALOGS).unwrap_or((own.as_str(), ""));
    let nav = pages
        .iter()
        .map(|p| {
            let current = if p.path == page.path {
                r#" aria-current="page""#
            } else {
                ""
            };
            format!(r#"      <a href="{}"{current}>{}</a>"#, p.path, p.nav)
        })
        .collect::<Vec<_>>()
        .join("\n");
    let html = fill(&layout, |name| match name {
        "title" => Some(page.title),
        "script" => Some(page.script),
        "nav" => Some(&nav),
        "main" => Some(main.trim_end()),
        "dialogs" => Some(dialogs.trim_end()),
        _ => None,
    })
    .map_err(|near| LayoutError::Placeholder("layout.html".into(), near))?;
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(html.as_bytes())[..16]));
    Ok(Rendered { html, etag })
}

fn text(file: &str) -> Result<String, LayoutError> {
    let missing = || LayoutError::Missing(file.to_owned());
    let data = Assets::get(file).ok_or_else(missing)?.data;
    String::from_utf8(data.into_owned()).map_err(|_| missing())
}

/// A page's own file with its parts put in.
fn with_parts(file: &str) -> Result<String, LayoutError> {
    parts(&text(file)?).map_err(|near| LayoutError::Placeholder(file.to_owned(), near))
}

/// `own` with each `{{part name=value|…}}` replaced by `assets/parts/<part>.html`, whose
/// `{{name}}` placeholders are filled with the values (and nothing else).
fn parts(own: &str) -> Result<String, String> {
    let part = |call: &str| {
        let (name, args) = call.split_once(' ').unwrap_or((call, ""));
        let args = args
            .split('|')
            .filter(|a| !a.is_empty())
            .map(|a| a.split_once('='))
            .collect::<Option<Vec<_>>>()?;
        let template = text(&format!("parts/{name}.html")).ok()?;
        let value = |n: &str| args.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        fill(template.trim_end(), value).ok()
    };
    fill(own, part)
}

/// Replaces each `{{name}}` of `template` in one pass, so an inserted value is never scanned;
/// an unknown or unclosed placeholder is an error with the text after its `{{`.
fn fill<V: AsRef<str>>(template: &str, value: impl Fn(&str) -> Option<V>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let near = || after.chars().take(20).collect::<String>();
        let end = after.find("}}").ok_or_else(near)?;
        let v = value(&after[..end]).ok_or_else(near)?;
        out.push_str(v.as_ref());
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::PAGES;

    #[test]
    fn every_page_renders_with_its_title_script_and_one_current_link() {
        for page in &PAGES {
            let r = render(page, &PAGES).expect("renders");
            assert!(r.html.starts_with("<!doctype html>"), "{}", page.path);
            assert!(
                r.html
                    .contains(&format!("<title>{} · hookrelay</title>", page.title))
            );
            assert!(r.html.contains(&format!("src=\"/admin/assets/{}\"", page.script)));
            assert_eq!(r.html.matches("aria-current=\"page\"").count(), 1);
            assert!(r.html.contains(&format!(
                "<a href=\"{}\" aria-current=\"page\">{}</a>",
                page.path, page.nav
            )));
            assert!(!r.html.contains("{{"), "{} left a placeholder", page.path);
            assert!(!r.html.contains(DIALOGS), "{} left the marker", page.path);
        }
    }

    #[test]
    fn a_pages_dialogs_come_after_main_and_its_view_inside() {
        let page = PAGES
            .iter()
            .find(|p| p.file == "webhooks.html")
            .expect("webhooks page");
        let html = render(page, &PAGES).expect("renders").html;
        let main_end = html.find("</main>").expect("main");
        assert!(html.find("id=\"view-webhooks\"").expect("view") < main_end);
        assert!(html.find("<dialog id=\"editor\"").expect("editor") > main_end);
        assert!(html.find("<dialog id=\"confirm\"").expect("confirm") > main_end);
    }

    #[test]
    fn a_part_is_filled_with_its_values_and_a_wrong_call_refused() {
        let head =
            parts("{{dialog-head id=editor|title=New webhook|close=Close without saving}}").expect("fills");
        assert!(head.starts_with(r#"    <div class="dialog-head">"#), "{head}");
        assert!(head.contains(r#"<h2 id="editor-title">New webhook</h2>"#));
        assert!(head.contains(r#"id="editor-close" aria-label="Close without saving">✕</button>"#));
        assert!(head.ends_with("</div>"), "{head}");
        assert_eq!(
            parts("a{{table-rows}}b")
                .expect("fills")
                .matches("<tbody id=\"rows\">")
                .count(),
            1
        );
        for wrong in [
            "{{dialog-head id=x}}",
            "{{dialog-head id=x|title=t|close}}",
            "{{no-such-part}}",
            "{{table-rows",
        ] {
            assert!(parts(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn placeholders_are_filled_once_and_unknown_ones_refused() {
        let v = |n: &str| (n == "a").then_some("{{a}}");
        assert_eq!(fill("x{{a}}y", v).expect("fills"), "x{{a}}y");
        assert!(fill("x{{b}}y", v).is_err());
        assert!(fill("x{{a", v).is_err());
        assert_eq!(fill("plain", v).expect("fills"), "plain");
    }
}
