//! Malformed images that a client may send (issue 14, item 10): truncations, bad CRCs, corrupt
//! deflate and LZW streams, bit depths and variants aiocr does not decode, palette and header
//! errors, in every format. Each must be refused as an `ImageError` (the contract's 3003, or
//! 3004 for out-of-bounds sizes): by the header probe where the header decides it, so the
//! server refuses before charging, else by the decoder; through the engine it must stay an
//! image error, never a model error; and nothing may panic.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use aiocr::engine::{
    decode_image, probe_image, Engine, ImageError, ImageLimits, RecognizeError, RecognizeOptions,
};

/// Which refusal a case must get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Corrupt,
    Unsupported,
    OutOfBounds,
}

/// Where it must be refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// `probe_image` (header only): refused before the server charges.
    Probe(Kind),
    /// The header passes; the decoder refuses.
    Decode(Kind),
}

struct Case {
    name: String,
    bytes: Vec<u8>,
    stage: Stage,
}

fn case(name: impl Into<String>, bytes: Vec<u8>, stage: Stage) -> Case {
    Case {
        name: name.into(),
        bytes,
        stage,
    }
}

use Kind::*;
use Stage::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/captcha")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One of tests/fixtures/formats (the rarer encodings Pillow reads).
fn formats_fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/formats")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn model_dir() -> PathBuf {
    match std::env::var_os("AIOCR_MODEL_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"),
    }
}

// ---- PNG -------------------------------------------------------------------------------

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&out[4..]).to_be_bytes());
    out
}

/// A zlib stream of stored (uncompressed) deflate blocks: every byte of it is under the
/// test's control, so each corruption below is exactly the one named.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = data.chunks(65535).collect();
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + byte as u32) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// Scanlines (filter byte 0, then a pattern) for a non-interlaced image.
fn scanlines(width: usize, height: usize, bits_per_pixel: usize) -> Vec<u8> {
    let row_bytes = (width * bits_per_pixel).div_ceil(8);
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0);
        raw.extend((0..row_bytes).map(|x| (x * 7 + y * 3) as u8));
    }
    raw
}

fn ihdr(width: u32, height: u32, depth: u8, color: u8) -> Vec<u8> {
    let mut data = width.to_be_bytes().to_vec();
    data.extend_from_slice(&height.to_be_bytes());
    data.extend_from_slice(&[depth, color, 0, 0, 0]);
    data
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A PNG from its IHDR data, chunks before IDAT, and IDAT's zlib stream.
fn png_from(ihdr_data: &[u8], before_idat: &[Vec<u8>], zlib: &[u8]) -> Vec<u8> {
    let mut out = PNG_SIGNATURE.to_vec();
    out.extend(chunk(b"IHDR", ihdr_data));
    for extra in before_idat {
        out.extend_from_slice(extra);
    }
    out.extend(chunk(b"IDAT", zlib));
    out.extend(chunk(b"IEND", b""));
    out
}

/// A valid 12x6 PNG of this depth and colour type (a 4-entry palette for type 3).
fn small_png(depth: u8, color: u8) -> Vec<u8> {
    sized_png(12, 6, depth, color)
}

fn sized_png(width: u32, height: u32, depth: u8, color: u8) -> Vec<u8> {
    let channels = match color {
        0 | 3 => 1,
        4 => 2,
        2 => 3,
        _ => 4,
    };
    let palette = if color == 3 {
        vec![chunk(b"PLTE", &[0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])]
    } else {
        Vec::new()
    };
    let raw = scanlines(width as usize, height as usize, depth as usize * channels);
    png_from(
        &ihdr(width, height, depth, color),
        &palette,
        &zlib_stored(&raw),
    )
}

/// Offsets of every chunk: (start of its length field, kind, data length).
fn png_chunks(png: &[u8]) -> Vec<(usize, [u8; 4], usize)> {
    let mut chunks = Vec::new();
    let mut at = 8;
    while at + 12 <= png.len() {
        let length = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        chunks.push((at, png[at + 4..at + 8].try_into().unwrap(), length));
        at += 12 + length;
    }
    chunks
}

fn first_chunk(png: &[u8], kind: &[u8; 4]) -> (usize, usize) {
    png_chunks(png)
        .into_iter()
        .find(|(_, k, _)| k == kind)
        .map(|(at, _, length)| (at, length))
        .unwrap_or_else(|| panic!("no {} chunk", String::from_utf8_lossy(kind)))
}

/// Replaces the data of the first chunk of `kind` (its CRC recomputed: a valid chunk whose
/// content is wrong).
fn with_chunk_data(png: &[u8], kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let (at, length) = first_chunk(png, kind);
    let mut out = png[..at].to_vec();
    out.extend(chunk(kind, data));
    out.extend_from_slice(&png[at + 12 + length..]);
    out
}

fn flipped(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 0x55;
    out
}

fn png_cases() -> Vec<Case> {
    let rgb = fixture("0109.png");
    let rgba = fixture("0182.png");
    let mut cases = Vec::new();

    // Truncations: in the signature or IHDR (header), then anywhere in the image data.
    for cut in [9, 16, 24, 30] {
        cases.push(case(
            format!("png truncated at {cut}"),
            rgb[..cut].to_vec(),
            Probe(Corrupt),
        ));
    }
    let (idat, idat_len) = first_chunk(&rgb, b"IDAT");
    for (label, cut) in [
        ("after IHDR", 33),
        ("in the IDAT length", idat + 2),
        ("after the IDAT header", idat + 8),
        ("a quarter into IDAT", idat + 8 + idat_len / 4),
        ("half into IDAT", idat + 8 + idat_len / 2),
        ("before the IDAT CRC", idat + 8 + idat_len),
    ] {
        cases.push(case(
            format!("png truncated {label}"),
            rgb[..cut].to_vec(),
            Decode(Corrupt),
        ));
    }
    let (idat_a, idat_a_len) = first_chunk(&rgba, b"IDAT");
    cases.push(case(
        "rgba png truncated half into IDAT",
        rgba[..idat_a + 8 + idat_a_len / 2].to_vec(),
        Decode(Corrupt),
    ));

    // Bad CRCs: IHDR's is checked by the probe; the others by the decoder.
    cases.push(case(
        "png IHDR CRC flipped",
        flipped(&rgb, 30),
        Probe(Corrupt),
    ));
    cases.push(case(
        "png IHDR data flipped",
        flipped(&rgb, 26),
        Probe(Corrupt),
    ));
    cases.push(case(
        "png IDAT CRC flipped",
        flipped(&rgb, idat + 8 + idat_len),
        Decode(Corrupt),
    ));
    cases.push(case(
        "png IDAT data flipped (bad CRC)",
        flipped(&rgb, idat + 20),
        Decode(Corrupt),
    ));
    let (text_at, _) = first_chunk(&with_text(&rgb), b"tEXt");
    cases.push(case(
        "png ancillary chunk CRC flipped",
        flipped(&with_text(&rgb), text_at + 8),
        Decode(Corrupt),
    ));

    // Corrupt deflate inside well-formed chunks (CRCs right).
    let raw = scanlines(12, 6, 24);
    let good = zlib_stored(&raw);
    let header = ihdr(12, 6, 8, 2);
    let deflate_cases: [(&str, Vec<u8>); 7] = [
        ("zlib header check bits wrong", {
            let mut z = good.clone();
            z[1] ^= 0x01;
            z
        }),
        ("zlib compression method 15", {
            let mut z = good.clone();
            z[0] = 0x7F;
            z
        }),
        ("deflate reserved block type", {
            let mut z = good.clone();
            z[2] = 0b111;
            z
        }),
        ("stored block LEN/NLEN mismatch", {
            let mut z = good.clone();
            z[5] ^= 0xFF;
            z
        }),
        ("deflate stream cut short", good[..good.len() / 2].to_vec()),
        (
            "deflate of too few rows",
            zlib_stored(&raw[..raw.len() / 2]),
        ),
        ("zlib stream of zeros", vec![0; 64]),
    ];
    for (label, zlib) in deflate_cases {
        cases.push(case(
            format!("png {label}"),
            png_from(&header, &[], &zlib),
            Decode(Corrupt),
        ));
    }
    let mut bad_filter = raw.clone();
    bad_filter[0] = 5;
    cases.push(case(
        "png scanline filter type 5",
        png_from(&header, &[], &zlib_stored(&bad_filter)),
        Decode(Corrupt),
    ));
    cases.push(case(
        "png without IDAT",
        {
            let mut out = PNG_SIGNATURE.to_vec();
            out.extend(chunk(b"IHDR", &header));
            out.extend(chunk(b"IEND", b""));
            out
        },
        Decode(Corrupt),
    ));

    // Header variants: the probe decides. (16-bit grayscale is readable: Pillow opens it as
    // I;16, and so does aiocr.)
    for (depth, color) in [
        (8, 1),
        (8, 5),
        (8, 7),
        (4, 2),
        (16, 3),
        (1, 6),
        (2, 4),
        (3, 0),
        (0, 0),
        (32, 2),
    ] {
        let mut bytes = small_png(8, 2);
        bytes[24] = depth;
        bytes[25] = color;
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        cases.push(case(
            format!("png colour type {color} at {depth} bits"),
            bytes,
            Probe(Corrupt),
        ));
    }
    for (label, at, value) in [
        ("compression method 1", 26, 1),
        ("filter method 1", 27, 1),
        ("interlace method 2", 28, 2),
    ] {
        let mut data = ihdr(12, 6, 8, 2);
        data[at - 16] = value;
        cases.push(case(
            format!("png {label}"),
            png_from(&data, &[], &good),
            Probe(Corrupt),
        ));
    }
    let mut long_ihdr = PNG_SIGNATURE.to_vec();
    long_ihdr.extend(chunk(b"IHDR", &[ihdr(12, 6, 8, 2), vec![0]].concat()));
    cases.push(case("png IHDR of 14 bytes", long_ihdr, Probe(Corrupt)));
    cases.push(case(
        "png first chunk not IHDR",
        {
            let mut out = PNG_SIGNATURE.to_vec();
            out.extend(chunk(b"gAMA", &[0, 0, 0xB1, 0x8F]));
            out.extend_from_slice(&small_png(8, 2)[8..]);
            out
        },
        Probe(Corrupt),
    ));
    cases.push(case(
        "png 0 pixels wide",
        png_from(&ihdr(0, 6, 8, 2), &[], &good),
        Probe(Corrupt),
    ));
    cases.push(case(
        "png 100000 pixels wide",
        png_from(&ihdr(100_000, 6, 8, 2), &[], &good),
        Probe(OutOfBounds),
    ));

    // Other depths, truncated or cut short.
    for (depth, color) in [(1, 0), (4, 0), (16, 0), (16, 2), (16, 6), (8, 4), (4, 3)] {
        let bytes = small_png(depth, color);
        let (idat, _) = first_chunk(&bytes, b"IDAT");
        cases.push(case(
            format!("png {depth}-bit colour type {color} truncated"),
            bytes[..idat + 20].to_vec(),
            Decode(Corrupt),
        ));
    }

    // Palette errors.
    let indexed = small_png(8, 3);
    // (An empty PLTE reads as a missing one, which Pillow also opens with its default
    // palette: not in this list.)
    cases.push(case(
        "png palette of 257 entries",
        with_chunk_data(&indexed, b"PLTE", &[7; 771]),
        Decode(Corrupt),
    ));
    cases.push(case(
        "png palette length not a multiple of 3",
        with_chunk_data(&indexed, b"PLTE", &[1, 2, 3, 4]),
        Decode(Corrupt),
    ));
    cases.push(case(
        "png palette of 300 entries",
        with_chunk_data(&indexed, b"PLTE", &[7; 900]),
        Decode(Corrupt),
    ));
    cases.push(case(
        "png two palettes",
        {
            let (at, _) = first_chunk(&indexed, b"PLTE");
            let mut out = indexed[..at].to_vec();
            out.extend(chunk(b"PLTE", &[0; 6]));
            out.extend_from_slice(&indexed[at..]);
            out
        },
        Decode(Corrupt),
    ));
    cases
}

/// The fixture with a tEXt chunk right after IHDR.
fn with_text(png: &[u8]) -> Vec<u8> {
    let mut out = png[..33].to_vec();
    out.extend(chunk(b"tEXt", b"Comment\0made for a test"));
    out.extend_from_slice(&png[33..]);
    out
}

// ---- JPEG ------------------------------------------------------------------------------

/// Every marker segment before the scan: (offset of the 0xFF, marker, length field value).
fn jpeg_segments(jpeg: &[u8]) -> Vec<(usize, u8, usize)> {
    let mut segments = Vec::new();
    let mut at = 2;
    while at + 4 <= jpeg.len() {
        let marker = jpeg[at + 1];
        let length = u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]) as usize;
        segments.push((at, marker, length));
        if marker == 0xDA {
            break;
        }
        at += 2 + length;
    }
    segments
}

fn segment(jpeg: &[u8], marker: u8) -> (usize, usize) {
    jpeg_segments(jpeg)
        .into_iter()
        .find(|&(_, m, _)| m == marker)
        .map(|(at, _, length)| (at, length))
        .unwrap_or_else(|| panic!("no marker {marker:02X}"))
}

fn set(bytes: &[u8], at: usize, values: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at..at + values.len()].copy_from_slice(values);
    out
}

fn jpeg_cases() -> Vec<Case> {
    let jpeg = fixture("0014.jpg");
    let (sof, sof_len) = segment(&jpeg, 0xC0);
    let (sos, sos_len) = segment(&jpeg, 0xDA);
    let (dqt, _) = segment(&jpeg, 0xDB);
    let (dht, _) = segment(&jpeg, 0xC4);
    let scan = sos + 2 + sos_len;
    let mut cases = Vec::new();

    for cut in [3, 4, 10, dqt + 20, sof + 5] {
        cases.push(case(
            format!("jpeg truncated at {cut} (before the frame size)"),
            jpeg[..cut].to_vec(),
            Probe(Corrupt),
        ));
    }
    for (label, cut) in [
        ("after the frame header", sof + 2 + sof_len),
        ("in the scan header", sos + 6),
        ("at the scan data", scan),
        ("a quarter into the scan", scan + (jpeg.len() - scan) / 4),
        ("half into the scan", scan + (jpeg.len() - scan) / 2),
    ] {
        cases.push(case(
            format!("jpeg truncated {label}"),
            jpeg[..cut].to_vec(),
            Decode(Corrupt),
        ));
    }
    // Frame header variants (the probe decides).
    // CMYK and YCCK (4 components) are read as Pillow reads them; cut short, they are corrupt.
    for name in [
        "jpeg-cmyk-k-0.jpg",
        "jpeg-cmyk-prog-0.jpg",
        "jpeg-ycck-0.jpg",
    ] {
        let cmyk = formats_fixture(name);
        let (sos, _) = segment(&cmyk, 0xDA);
        for (label, cut) in [
            ("in the scan header", sos + 6),
            ("half way", cmyk.len() / 2),
        ] {
            cases.push(case(
                format!("{name} truncated {label}"),
                cmyk[..cut].to_vec(),
                Decode(Corrupt),
            ));
        }
    }
    cases.push(case(
        "jpeg 12-bit precision",
        set(&jpeg, sof + 4, &[12]),
        Probe(Unsupported),
    ));
    cases.push(case(
        "jpeg 2 components",
        set(&jpeg, sof + 9, &[2]),
        Probe(Unsupported),
    ));
    cases.push(case(
        "jpeg hierarchical (SOF5)",
        set(&jpeg, sof + 1, &[0xC5]),
        Probe(Unsupported),
    ));
    cases.push(case(
        "jpeg frame header length wrong",
        set(&jpeg, sof + 2, &[0, 18]),
        Probe(Corrupt),
    ));
    cases.push(case(
        "jpeg 0 pixels high",
        set(&jpeg, sof + 5, &[0, 0]),
        Probe(Corrupt),
    ));
    cases.push(case(
        "jpeg 65535 pixels wide",
        set(&jpeg, sof + 7, &[0xFF, 0xFF]),
        Probe(OutOfBounds),
    ));
    cases.push(case(
        "jpeg segment length 1",
        set(&jpeg, dqt + 2, &[0, 1]),
        Probe(Corrupt),
    ));
    cases.push(case(
        "jpeg scan before the frame header",
        {
            let mut out = jpeg[..sof].to_vec();
            out.extend_from_slice(&jpeg[sos..]);
            out
        },
        Probe(Corrupt),
    ));
    cases.push(case(
        "jpeg ends before the frame header",
        [&jpeg[..2], &[0xFF, 0xD9][..]].concat(),
        Probe(Corrupt),
    ));
    // Streams libjpeg refuses.
    cases.push(case(
        "jpeg sampling factor 0",
        set(&jpeg, sof + 11, &[0x00]),
        Decode(Corrupt),
    ));
    cases.push(case(
        "jpeg quantisation table index 9",
        set(&jpeg, dqt + 4, &[9]),
        Decode(Corrupt),
    ));
    cases.push(case(
        "jpeg huffman table with 255 codes of length 1",
        set(&jpeg, dht + 5, &[255]),
        Decode(Corrupt),
    ));
    cases.push(case(
        "jpeg scan of an unknown component",
        set(&jpeg, sos + 5, &[9]),
        Decode(Corrupt),
    ));
    cases.push(case(
        "jpeg end of image in the scan",
        {
            let mut out = jpeg[..scan + 10].to_vec();
            out.extend_from_slice(&[0xFF, 0xD9]);
            out
        },
        Decode(Corrupt),
    ));
    cases
}

// ---- GIF -------------------------------------------------------------------------------

/// Offset of the first image descriptor (0x2C) after the header, screen and extensions.
fn gif_image_descriptor(gif: &[u8]) -> usize {
    let flags = gif[10];
    let mut at = 13
        + if flags & 0x80 != 0 {
            3 << ((flags & 7) + 1)
        } else {
            0
        };
    while gif[at] == 0x21 {
        at += 2;
        while gif[at] != 0 {
            at += 1 + gif[at] as usize;
        }
        at += 1;
    }
    assert_eq!(gif[at], 0x2C, "image descriptor");
    at
}

fn gif_cases() -> Vec<Case> {
    let gif = fixture("0087.gif");
    let image = gif_image_descriptor(&gif);
    let lzw = image + 10;
    let mut cases = Vec::new();
    for cut in [6, 8] {
        cases.push(case(
            format!("gif truncated at {cut}"),
            gif[..cut].to_vec(),
            Probe(Corrupt),
        ));
    }
    for (label, cut) in [
        ("after the screen descriptor", 13),
        ("in the colour table", 13 + 9),
        ("at the image descriptor", image),
        ("in the image descriptor", image + 5),
        ("at the LZW data", lzw + 1),
        ("half into the LZW data", lzw + (gif.len() - lzw) / 2),
    ] {
        cases.push(case(
            format!("gif truncated {label}"),
            gif[..cut].to_vec(),
            Decode(Corrupt),
        ));
    }
    cases.push(case(
        "gif LZW minimum code size 0",
        set(&gif, lzw, &[0]),
        Decode(Corrupt),
    ));
    cases.push(case(
        "gif LZW minimum code size 13",
        set(&gif, lzw, &[13]),
        Decode(Corrupt),
    ));
    cases.push(case(
        "gif LZW codes beyond the table",
        {
            let mut out = gif[..lzw].to_vec();
            out.extend_from_slice(&[
                2, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0x3B,
            ]);
            out
        },
        Decode(Corrupt),
    ));
    cases.push(case(
        "gif without an image",
        [&gif[..image], &[0x3B][..]].concat(),
        Decode(Corrupt),
    ));
    cases.push(case(
        "gif unknown block 0x99",
        set(&gif, image, &[0x99]),
        Decode(Corrupt),
    ));
    cases.push(case(
        "gif frame of 65535x65535 pixels",
        set(&gif, image + 5, &[0xFF, 0xFF, 0xFF, 0xFF]),
        Decode(Corrupt),
    ));
    cases.push(case(
        "gif 0 pixels wide",
        set(&gif, 6, &[0, 0]),
        Probe(Corrupt),
    ));
    cases.push(case(
        "gif 60000 pixels wide",
        set(&gif, 6, &[0x60, 0xEA]),
        Probe(OutOfBounds),
    ));
    cases
}

// ---- BMP -------------------------------------------------------------------------------

/// A bottom-up BMP with a 40-byte header.
fn bmp(width: u32, height: i32, bits: u16, compression: u32, palette: &[[u8; 4]]) -> Vec<u8> {
    let stride = (width as usize * bits as usize).div_ceil(32) * 4;
    let pixel_offset = 14 + 40 + 4 * palette.len();
    let size = pixel_offset + stride * height.unsigned_abs() as usize;
    let mut out = b"BM".to_vec();
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(pixel_offset as u32).to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(&compression.to_le_bytes());
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(&(palette.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    for entry in palette {
        out.extend_from_slice(entry);
    }
    out.extend((0..size - pixel_offset).map(|i| (i % 4) as u8));
    out
}

fn bmp_cases() -> Vec<Case> {
    let fixture = fixture("0209.bmp");
    let palette = [[0, 0, 0, 0], [255, 0, 0, 0], [0, 255, 0, 0], [0, 0, 255, 0]];
    let mut cases = Vec::new();
    for cut in [3, 14, 20, 30, 54, 60, fixture.len() / 2, fixture.len() - 1] {
        cases.push(case(
            format!("bmp truncated at {cut}"),
            fixture[..cut].to_vec(),
            Probe(Corrupt),
        ));
    }
    let eight = bmp(12, 6, 8, 0, &palette);
    cases.push(case(
        "bmp 8-bit truncated in the palette",
        eight[..60].to_vec(),
        Probe(Corrupt),
    ));
    cases.push(case(
        "bmp 8-bit truncated in the rows",
        eight[..eight.len() - 3].to_vec(),
        Probe(Corrupt),
    ));
    cases.push(case(
        "bmp 4-bit truncated in the rows",
        {
            let four = bmp(12, 6, 4, 0, &palette);
            four[..four.len() - 1].to_vec()
        },
        Probe(Corrupt),
    ));
    for (label, compression) in [
        ("RLE4 (at 8 bits)", 2),
        ("JPEG", 4),
        ("PNG", 5),
        ("type 11", 11),
    ] {
        cases.push(case(
            format!("bmp {label} compression"),
            bmp(12, 6, 8, compression, &palette),
            Probe(Unsupported),
        ));
    }
    // Run-length files: only decoding finds runs that stop short (Pillow: "not enough image
    // data"); the header still finds pixel data that is not there.
    cases.push(case(
        "bmp RLE8 whose runs end at once",
        bmp(12, 6, 8, 1, &palette),
        Decode(Corrupt),
    ));
    for name in [
        "bmp-rle8-0.bmp",
        "bmp-rle4-delta-0.bmp",
        "bmp-rle8-topdown-0.bmp",
    ] {
        let rle = formats_fixture(name);
        let pixel_offset = u32::from_le_bytes(rle[10..14].try_into().unwrap()) as usize;
        let runs = rle.len() - pixel_offset;
        for cut in [
            pixel_offset + 1,
            pixel_offset + runs / 2,
            pixel_offset + runs * 3 / 4,
        ] {
            cases.push(case(
                format!("{name} truncated at {cut}"),
                rle[..cut].to_vec(),
                Decode(Corrupt),
            ));
        }
        cases.push(case(
            format!("{name} without pixel data"),
            rle[..pixel_offset].to_vec(),
            Probe(Corrupt),
        ));
    }
    cases.push(case(
        "bmp 16-bit truncated in the rows",
        {
            let sixteen = bmp(12, 6, 16, 0, &[]);
            sixteen[..sixteen.len() - 1].to_vec()
        },
        Probe(Corrupt),
    ));
    cases.push(case(
        "bmp bit fields at 24 bits",
        bmp(12, 6, 24, 3, &[]),
        Probe(Unsupported),
    ));
    cases.push(case(
        "bmp bit fields 5-6-5",
        {
            let mut bytes = bmp(
                12,
                6,
                32,
                3,
                &[[0, 0xF8, 0, 0], [0xE0, 0x07, 0, 0], [0x1F, 0, 0, 0]],
            );
            bytes[10] = 54 + 12;
            bytes
        },
        Probe(Unsupported),
    ));
    for bits in [0, 2, 64] {
        cases.push(case(
            format!("bmp {bits}-bit"),
            bmp(12, 6, bits, 0, &[]),
            Probe(Unsupported),
        ));
    }
    cases.push(case(
        "bmp palette of 300 colours",
        {
            let mut bytes = bmp(12, 6, 8, 0, &palette);
            bytes[46..50].copy_from_slice(&300u32.to_le_bytes());
            bytes
        },
        Probe(Unsupported),
    ));
    cases.push(case(
        "bmp header of 20 bytes",
        set(&fixture, 14, &[20, 0, 0, 0]),
        Probe(Unsupported),
    ));
    cases.push(case(
        "bmp negative width",
        set(&fixture, 18, &(-5i32).to_le_bytes()),
        Probe(Corrupt),
    ));
    cases.push(case(
        "bmp 0 pixels high",
        set(&fixture, 22, &[0; 4]),
        Probe(Corrupt),
    ));
    cases.push(case(
        "bmp 70000 pixels wide",
        set(&fixture, 18, &70_000u32.to_le_bytes()),
        Probe(OutOfBounds),
    ));
    cases.push(case(
        "bmp pixel offset past the end",
        set(&fixture, 10, &u32::MAX.to_le_bytes()),
        Probe(Corrupt),
    ));
    cases
}

/// WebP: a header cut short is refused by the probe; a cut bitstream by libwebp.
fn webp_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for name in ["webp-lossy-0.webp", "webp-lossless-alpha-0.webp"] {
        let webp = formats_fixture(name);
        cases.push(case(
            format!("{name} truncated in its first chunk's header"),
            webp[..22].to_vec(),
            Probe(Corrupt),
        ));
        cases.push(case(
            format!("{name} truncated half way"),
            webp[..webp.len() / 2].to_vec(),
            Decode(Corrupt),
        ));
    }
    cases
}

fn all_cases() -> Vec<Case> {
    [
        png_cases(),
        jpeg_cases(),
        gif_cases(),
        bmp_cases(),
        webp_cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn kind_of(error: &ImageError) -> Option<Kind> {
    match error {
        ImageError::Corrupt(_) => Some(Corrupt),
        ImageError::Unsupported(_) => Some(Unsupported),
        ImageError::DimensionsOutOfBounds { .. } => Some(OutOfBounds),
        ImageError::Empty | ImageError::NotAnImage => None,
    }
}

/// Where `bytes` is refused, or a description of what went wrong instead.
fn refusal(bytes: &[u8], limits: &ImageLimits) -> Result<(Stage, ImageError), String> {
    let probe_stage: fn(Kind) -> Stage = Probe;
    let decode_stage: fn(Kind) -> Stage = Decode;
    let outcome = catch_unwind(AssertUnwindSafe(|| match probe_image(bytes, limits) {
        Err(error) => Ok((probe_stage, error)),
        Ok(_) => match decode_image(bytes, limits) {
            Err(error) => Ok((decode_stage, error)),
            Ok(pixels) => Err(format!(
                "decoded as {}x{} {:?}",
                pixels.width, pixels.height, pixels.mode
            )),
        },
    }));
    let (stage, error) = outcome.map_err(|_| "panicked".to_string())??;
    let kind = kind_of(&error).ok_or_else(|| format!("refused as {error:?}"))?;
    Ok((stage(kind), error))
}

#[test]
fn every_malformed_image_is_an_image_error_at_the_right_stage() {
    let cases = all_cases();
    assert!(cases.len() >= 70, "only {} cases", cases.len());
    let limits = ImageLimits::default();
    let mut wrong = Vec::new();
    for case in &cases {
        match refusal(&case.bytes, &limits) {
            Ok((stage, error)) if stage == case.stage => {
                // The list with its outcomes: `cargo test --test bad_images -- --nocapture`.
                println!("{}\t{stage:?}\t{error}", case.name);
                assert_eq!(
                    aiocr::contract::of_image(&error).code(),
                    if stage == Probe(OutOfBounds) {
                        3004
                    } else {
                        3003
                    }
                );
            }
            Ok((stage, error)) => wrong.push(format!(
                "{}: {stage:?} ({error}), expected {:?}",
                case.name, case.stage
            )),
            Err(what) => wrong.push(format!("{}: {what}, expected {:?}", case.name, case.stage)),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

/// Through the engine (decode, preprocessing, model), each stays the same image error: the
/// server must never see a malformed image as a failed recognition.
#[test]
fn the_engine_answers_malformed_images_with_their_image_error() {
    let limits = ImageLimits::default();
    let mut engine = Engine::load(&model_dir(), &["old".to_string()], limits)
        .expect("models installed by scripts/setup.sh");
    let options = RecognizeOptions::default();
    for case in all_cases() {
        let expected = match refusal(&case.bytes, &limits) {
            Ok((_, error)) => error,
            Err(what) => panic!("{}: {what}", case.name),
        };
        let answer = engine.recognize(&case.bytes, &options);
        assert_eq!(
            answer,
            Err(RecognizeError::Image(expected)),
            "{}",
            case.name
        );
    }
}

/// Valid variants of the formats, so that the cases above fail for their one defect and not
/// because the test's writers are wrong.
#[test]
fn the_test_writers_make_valid_images() {
    let limits = ImageLimits::default();
    for (depth, color) in [
        (1, 0),
        (4, 0),
        (8, 0),
        (16, 0),
        (8, 2),
        (16, 2),
        (8, 3),
        (4, 3),
        (8, 4),
        (16, 6),
    ] {
        let pixels = decode_image(&small_png(depth, color), &limits)
            .unwrap_or_else(|e| panic!("{depth}-bit colour type {color}: {e}"));
        assert_eq!((pixels.width, pixels.height), (12, 6));
    }
    let palette = [[0, 0, 0, 0], [255, 0, 0, 0], [0, 255, 0, 0], [0, 0, 255, 0]];
    for bits in [4, 8] {
        assert!(decode_image(&bmp(12, 6, bits, 0, &palette), &limits).is_ok());
    }
    assert!(decode_image(&bmp(12, 6, 24, 0, &[]), &limits).is_ok());
    assert!(decode_image(&bmp(12, 6, 16, 0, &[]), &limits).is_ok());
    assert!(decode_image(&with_text(&fixture("0109.png")), &limits).is_ok());
}

/// Valid images of extreme shapes: the models get an input of 1 to a few columns, or the
/// resize leaves nothing. Each is answered or refused as an image error (3004), never a
/// failed model run.
#[test]
fn extreme_shapes_are_answered_or_refused_as_image_errors() {
    let limits = ImageLimits::default();
    let names = ["old".to_string(), "beta".to_string()];
    let mut engine = Engine::load(&model_dir(), &names, limits).expect("models installed");
    let shapes = [
        (1, 1),
        (1, 64),
        (2, 64),
        (3, 64),
        (4, 64),
        (6, 64),
        (8, 64),
        (16, 64),
        (1, 4096),
        (4096, 1),
        (4096, 488),
        (64, 1),
        (2, 2),
    ];
    for (width, height) in shapes {
        let image = sized_png(width, height, 8, 0);
        for model in &names {
            let options = RecognizeOptions {
                model: model.clone(),
                ..Default::default()
            };
            match engine.recognize(&image, &options) {
                Ok(_) | Err(RecognizeError::Image(ImageError::DimensionsOutOfBounds { .. })) => {}
                Err(other) => panic!("{width}x{height}, model {model}: {other:?}"),
            }
        }
    }
}
