//! The demo page gzip-compressed (contract section 8), for the frameworks with no compression
//! of their own (Rocket) or one that ignores what the client accepts (warp's `gzip()`):
//! whether a request's `Accept-Encoding` accepts gzip, and the page compressed once.

use std::io::Write;
use std::sync::LazyLock;

use crate::DEMO_PAGE;

/// Whether these `Accept-Encoding` values (every header line) accept gzip (RFC 9110 §12.5.3):
/// `gzip` (or `x-gzip`) with a weight above 0, or no mention of it and `*` with a weight
/// above 0. No header at all accepts no coding the server could choose.
pub fn accepts_gzip<'a>(accept_encoding: impl IntoIterator<Item = &'a str>) -> bool {
    let mut gzip = None;
    let mut star = None;
    for item in accept_encoding
        .into_iter()
        .flat_map(|value| value.split(','))
    {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let weight = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .map(|q| q.trim().parse::<f32>().unwrap_or(0.0))
            .next()
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(gzip.map_or(weight, |w: f32| w.max(weight)));
        } else if coding == "*" {
            star = Some(weight);
        }
    }
    gzip.or(star).is_some_and(|weight| weight > 0.0)
}

/// [`DEMO_PAGE`] gzip-compressed.
pub static DEMO_PAGE_GZIP: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(DEMO_PAGE.as_bytes())
        .expect("writing to memory");
    encoder.finish().expect("writing to memory")
});

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn gzip_is_accepted_as_rfc_9110_says() {
        for yes in [
            &["gzip"][..],
            &["br, gzip"],
            &["gzip, deflate, br, zstd"],
            &["GZIP;q=0.5"],
            &["x-gzip"],
            &["*"],
            &["br;q=1, *;q=0.1"],
            &["br", "gzip"],
            &["gzip;q=0", "gzip"],
        ] {
            assert!(accepts_gzip(yes.iter().copied()), "{yes:?}");
        }
        for no in [
            &[][..],
            &[""],
            &["identity"],
            &["br, deflate"],
            &["gzip;q=0"],
            &["gzip; q=0.000"],
            &["*;q=0"],
            &["gzip;q=0, *"],
            &["gzipped"],
        ] {
            assert!(!accepts_gzip(no.iter().copied()), "{no:?}");
        }
    }

    #[test]
    fn the_compressed_page_is_the_page() {
        let mut page = String::new();
        flate2::read::GzDecoder::new(DEMO_PAGE_GZIP.as_slice())
            .read_to_string(&mut page)
            .unwrap();
        assert_eq!(page, *DEMO_PAGE);
        assert!(DEMO_PAGE_GZIP.len() < DEMO_PAGE.len() / 2);
    }
}
