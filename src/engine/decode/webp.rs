//! WebP as Pillow's WebPImagePlugin opens it: through libwebp's animation decoder (the first
//! frame on its canvas, decoded to non-premultiplied RGBA), mode RGBA when the file says it
//! has alpha, else RGB (Pillow's raw mode "RGBX": the fourth byte dropped). The libwebp is
//! the one Pillow 13.0.0's wheel bundles (1.6.0, built from `libwebp-sys`'s sources), so the
//! YUV-to-RGB conversion and the lossless transforms are the same code.

use libwebp_sys as webp;

use super::check_size;
use crate::engine::pixels::{Mode, Pixels};
use crate::engine::{ImageError, ImageInfo};

pub fn decode(bytes: &[u8], info: &ImageInfo) -> Result<Pixels, ImageError> {
    let decoder = AnimDecoder::new(bytes)?;
    let (width, height) = decoder.canvas()?;
    // The decoder has allocated its canvas already, but only after the probe bounded the
    // sizes the headers declare; the canvas must be that size.
    check_size(width, height, info)?;
    let rgba = decoder.first_frame(width * height * 4)?;
    if decoder.has_alpha() {
        return Ok(Pixels::new(Mode::Rgba, width, height, rgba, None));
    }
    let rgb = rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    Ok(Pixels::new(Mode::Rgb, width, height, rgb, None))
}

/// libwebp's WebPAnimDecoder over borrowed bytes, deleted on drop.
struct AnimDecoder<'a> {
    decoder: *mut webp::WebPAnimDecoder,
    /// The decoder reads from these bytes until it is deleted.
    _bytes: &'a [u8],
}

impl<'a> AnimDecoder<'a> {
    fn new(bytes: &'a [u8]) -> Result<AnimDecoder<'a>, ImageError> {
        let data = webp::WebPData {
            bytes: bytes.as_ptr(),
            size: bytes.len(),
        };
        // SAFETY: options is plain data initialised by libwebp; `data` points into `bytes`,
        // which outlives the decoder (the struct borrows it).
        let decoder = unsafe {
            let mut options = std::mem::zeroed::<webp::WebPAnimDecoderOptions>();
            if webp::WebPAnimDecoderOptionsInit(&mut options) == 0 {
                return Err(corrupt("decoder options"));
            }
            options.color_mode = webp::WEBP_CSP_MODE::MODE_RGBA;
            options.use_threads = 0;
            webp::WebPAnimDecoderNew(&data, &options)
        };
        if decoder.is_null() {
            return Err(corrupt("not a readable WebP file"));
        }
        Ok(AnimDecoder {
            decoder,
            _bytes: bytes,
        })
    }

    fn canvas(&self) -> Result<(usize, usize), ImageError> {
        let mut info = webp::WebPAnimInfo::default();
        // SAFETY: a live decoder and a plain-data out parameter.
        if unsafe { webp::WebPAnimDecoderGetInfo(self.decoder, &mut info) } == 0 {
            return Err(corrupt("no canvas"));
        }
        Ok((info.canvas_width as usize, info.canvas_height as usize))
    }

    /// The file's format flags say alpha (what Pillow's decoder reports as mode RGBA).
    fn has_alpha(&self) -> bool {
        // SAFETY: the demuxer belongs to the live decoder.
        let flags = unsafe {
            let demuxer = webp::WebPAnimDecoderGetDemuxer(self.decoder);
            webp::WebPDemuxGetI(demuxer, webp::WebPFormatFeature::WEBP_FF_FORMAT_FLAGS)
        };
        flags & webp::WebPFeatureFlags::ALPHA_FLAG as u32 != 0
    }

    /// The first frame: `size` bytes of RGBA owned by the decoder, copied out.
    fn first_frame(&self, size: usize) -> Result<Vec<u8>, ImageError> {
        let mut buffer: *mut u8 = std::ptr::null_mut();
        let mut timestamp = 0;
        // SAFETY: a live decoder; on success `buffer` points to the canvas, width * height
        // * 4 bytes (the canvas size checked by the caller), valid until the next call.
        unsafe {
            if webp::WebPAnimDecoderGetNext(self.decoder, &mut buffer, &mut timestamp) == 0
                || buffer.is_null()
            {
                return Err(corrupt("the first frame does not decode"));
            }
            Ok(std::slice::from_raw_parts(buffer, size).to_vec())
        }
    }
}

impl Drop for AnimDecoder<'_> {
    fn drop(&mut self) {
        // SAFETY: created by WebPAnimDecoderNew, deleted once.
        unsafe { webp::WebPAnimDecoderDelete(self.decoder) }
    }
}

fn corrupt(what: &str) -> ImageError {
    ImageError::Corrupt(format!("WebP: {what}"))
}
