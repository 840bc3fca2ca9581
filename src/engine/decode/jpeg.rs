//! JPEG through libjpeg-turbo with its default (ISLOW DCT, fancy upsampling) settings, as
//! Pillow decodes: gray files stay L, YCbCr/RGB files become RGB, CMYK and YCCK files become
//! CMYK read with Adobe's inverted polarity (Pillow's "CMYK;I", whatever the APP14 marker says).

use turbojpeg::{Colorspace, Decompressor, Image, PixelFormat};

use super::check_size;
use crate::engine::pixels::{Mode, Pixels};
use crate::engine::{ImageError, ImageInfo};

pub fn decode(bytes: &[u8], info: &ImageInfo) -> Result<Pixels, ImageError> {
    let mut decompressor = Decompressor::new().map_err(corrupt)?;
    let header = decompressor.read_header(bytes).map_err(corrupt)?;
    // libjpeg reads the frame header itself: the buffer below must be sized by the probed
    // (bounded) size, never by a second reading that could disagree with it.
    check_size(header.width, header.height, info)?;
    let (mode, format) = match header.colorspace {
        Colorspace::Gray => (Mode::L, PixelFormat::GRAY),
        Colorspace::YCbCr | Colorspace::RGB => (Mode::Rgb, PixelFormat::RGB),
        // libjpeg turns YCCK into CMYK itself (out_color_space JCS_CMYK, as Pillow asks).
        Colorspace::CMYK | Colorspace::YCCK => (Mode::Cmyk, PixelFormat::CMYK),
    };
    let (width, height) = (header.width, header.height);
    let pitch = width * mode.channels();
    let mut data = vec![0u8; pitch * height];
    let image = Image {
        pixels: data.as_mut_slice(),
        width,
        pitch,
        height,
        format,
    };
    // Any libjpeg warning (truncated data included) is an error here, as Pillow refuses
    // truncated files unless told otherwise.
    decompressor.decompress(bytes, image).map_err(corrupt)?;
    if mode == Mode::Cmyk {
        // Pillow's "CMYK;I" unpacker (Unpack.c's copy4I): every sample inverted.
        data.iter_mut().for_each(|sample| *sample = !*sample);
    }
    Ok(Pixels::new(mode, width, height, data, None))
}

fn corrupt(error: turbojpeg::Error) -> ImageError {
    ImageError::Corrupt(format!("JPEG: {error}"))
}
