//! A strict RSS 2.0 reader for Nitter feeds: anything that is not an `<rss>` document with a
//! `<channel>` (an HTML challenge page, an error page) is refused.

use quick_xml::Reader;
use quick_xml::events::Event;

/// One `<item>` of a feed, text fields unescaped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedItem {
    /// `title`: the post's text on Nitter.
    pub title: String,
    /// `description`: the post as HTML.
    pub description: String,
    /// `pubDate` as written (RFC 822).
    pub pub_date: String,
    /// `guid`.
    pub guid: String,
    /// `link`.
    pub link: String,
    /// `dc:creator`.
    pub creator: String,
}

impl FeedItem {
    /// The status id from `guid` or `link` (`.../<user>/status/<id>#m`), the same on every instance.
    pub fn status_id(&self) -> Option<&str> {
        [self.guid.as_str(), self.link.as_str()]
            .into_iter()
            .find_map(status_id_in)
    }
}

fn status_id_in(url: &str) -> Option<&str> {
    let after = url.split("/status/").nth(1)?;
    let end = after
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(after.len());
    after.get(..end).filter(|id| !id.is_empty())
}

/// Which item field the reader is inside.
#[derive(Clone, Copy)]
enum Field {
    Title,
    Description,
    PubDate,
    Guid,
    Link,
    Creator,
}

/// Parses `text` as RSS; the error says why it is not a feed.
pub fn parse_rss(text: &str) -> Result<Vec<FeedItem>, String> {
    let mut reader = Reader::from_str(text);
    let mut root: Option<String> = None;
    let mut saw_channel = false;
    let mut items = Vec::new();
    let mut current: Option<FeedItem> = None;
    let mut field: Option<Field> = None;
    let mut depth: usize = 0;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("XML error at byte {}: {e}", reader.error_position()))?;
        match event {
            Event::Start(start) => {
                let name = start.name().as_ref().to_lowercase();
                depth += 1;
                if root.is_none() {
                    if name != "rss" {
                        return Err(format!("root element is <{name}>, not <rss>"));
                    }
                    root = Some(name);
                    continue;
                }
                match name.as_str() {
                    "channel" => saw_channel = true,
                    "item" => current = Some(FeedItem::default()),
                    _ if current.is_some() => {
                        field = match name.as_str() {
                            "title" => Some(Field::Title),
                            "description" => Some(Field::Description),
                            "pubdate" => Some(Field::PubDate),
                            "guid" => Some(Field::Guid),
                            "link" => Some(Field::Link),
                            "dc:creator" => Some(Field::Creator),
                            _ => None,
                        }
                    }
                    _ => {}
                }
            }
            Event::Empty(start) if root.is_none() => {
                let name = start.name().as_ref().to_lowercase();
                return Err(format!("root element is <{name}/>, not <rss>"));
            }
            Event::End(end) => {
                depth = depth.saturating_sub(1);
                let name = end.name().as_ref().to_lowercase();
                if name == "item"
                    && let Some(item) = current.take()
                {
                    items.push(item);
                }
                field = None;
            }
            Event::Text(t) => {
                // RSS is XML 1.0: line ends normalised as 1.0 says.
                let decoded = t.xml10_content();
                append(&mut current, field, &decoded);
            }
            Event::CData(t) => {
                let decoded = t.xml10_content();
                append(&mut current, field, &decoded);
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name: &str = r.as_ref();
                        match quick_xml::escape::resolve_predefined_entity(name) {
                            Some(s) => s.to_owned(),
                            None => return Err(format!("unknown entity &{name};")),
                        }
                    }
                    Err(e) => return Err(format!("bad character reference: {e}")),
                };
                append(&mut current, field, &resolved);
            }
            Event::Eof => break,
            Event::DocType(_) if root.is_none() => {
                return Err("a DOCTYPE before the root: an HTML page, not RSS".to_owned());
            }
            _ => {}
        }
    }
    if root.is_none() {
        return Err("empty document".to_owned());
    }
    if depth != 0 {
        return Err("document ends inside an element (truncated)".to_owned());
    }
    if !saw_channel {
        return Err("<rss> without a <channel>".to_owned());
    }
    Ok(items)
}

fn append(current: &mut Option<FeedItem>, field: Option<Field>, text: &str) {
    let (Some(item), Some(field)) = (current.as_mut(), field) else {
        return;
    };
    let target = match field {
        Field::Title => &mut item.title,
        Field::Description => &mut item.description,
        Field::PubDate => &mut item.pub_date,
        Field::Guid => &mut item.guid,
        Field::Link => &mut item.link,
        Field::Creator => &mut item.creator,
    };
    target.push_str(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<rss xmlns:dc="http://purl.org/dc/elements/1.1/" version="2.0">
  <channel>
    <title>palm oil / Nitter</title>
    <item>
      <title>Palm oil exports rise &amp; stocks fall &#8212; ITS</title>
      <dc:creator>@trader</dc:creator>
      <description><![CDATA[<p>Palm oil exports rise</p>]]></description>
      <pubDate>Mon, 23 Nov 2026 08:00:00 GMT</pubDate>
      <guid>https://nitter.example/trader/status/1861234567890#m</guid>
      <link>https://nitter.example/trader/status/1861234567890#m</link>
    </item>
  </channel>
</rss>"#;

    #[test]
    fn reads_items_and_unescapes() {
        let items = parse_rss(FEED).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].title, "Palm oil exports rise & stocks fall — ITS");
        assert_eq!(items[0].description, "<p>Palm oil exports rise</p>");
        assert_eq!(items[0].creator, "@trader");
        assert_eq!(items[0].status_id(), Some("1861234567890"));
    }

    #[test]
    fn html_and_truncated_documents_are_refused() {
        let html = "<!DOCTYPE html><html><head><title>Verifying your browser</title></head></html>";
        assert!(parse_rss(html).unwrap_err().contains("DOCTYPE"));
        assert!(
            parse_rss("<html><body>challenge</body></html>")
                .unwrap_err()
                .contains("<html>")
        );
        assert!(parse_rss(&FEED[..FEED.len() / 2]).is_err());
        assert!(parse_rss("").is_err());
        assert!(
            parse_rss("<rss version=\"2.0\"></rss>")
                .unwrap_err()
                .contains("channel")
        );
    }
}
