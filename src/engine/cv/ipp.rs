//! Intel IPP's `ippiCrossCorrNorm_8u32f_C1R`, loaded at run time from the library ddddocr's
//! OpenCV itself runs.
//!
//! The opencv-python wheels ddddocr installs are built with IPP (2026.1.0 in
//! opencv-python-headless 5.1), and their `matchTemplate` hands the raw correlation of an 8-bit
//! single-channel image to IPP whenever the template covers at most a quarter of the image
//! (hal/ipp's `ipp_hal_matchTemplate`: `ippAlgAuto | ippiROIValid | ippiNormNone`), then
//! normalises IPP's float32 sums in double (`common_matchTemplate`). IPP's float32 FFT carries
//! rounding of its own (tens of units on sums near 1e8), which moves a TM_CCOEFF_NORMED score by
//! up to ~1e-4 on dense gray images; no exact or differently-rounded correlation reproduces
//! those digits. The same function from Intel's own IPP wheel on PyPI (`ipp`, same version)
//! gives bit-identical sums (checked on every slide fixture), so aiocr calls it.
//!
//! `scripts/setup.sh` puts the libraries in `MODEL_DIR/ipp/`. Without them, slides use the
//! exact correlation instead (scores within ~1e-4 of ddddocr's, same positions but for near
//! ties); [`load`] says so once.

use std::ffi::c_int;
use std::path::Path;
use std::sync::OnceLock;

use super::buffers::take;
use super::Mat;

/// The folder under the model directory that holds IPP's libraries.
pub const IPP_FOLDER: &str = "ipp";
/// IPP's core (CPU detection, memory) and image-processing dispatchers; the dispatcher loads
/// the variant for the CPU (`libippik0.so.12.1`, `libippil9...`) from its own folder.
const CORE_LIBRARY: &str = "libippcore.so.12";
const IMAGE_LIBRARY: &str = "libippi.so.12";

/// ippAlgAuto | ippiROIValid | ippiNormNone: what OpenCV passes.
const ALGORITHM: c_int = 0x0001_0000;

#[repr(C)]
#[derive(Clone, Copy)]
struct IppiSize {
    width: c_int,
    height: c_int,
}

type GetBufferSize = unsafe extern "C" fn(IppiSize, IppiSize, c_int, *mut c_int) -> c_int;
type CrossCorrNorm = unsafe extern "C" fn(
    *const u8,
    c_int,
    IppiSize,
    *const u8,
    c_int,
    IppiSize,
    *mut f32,
    c_int,
    c_int,
    *mut u8,
) -> c_int;

struct Ipp {
    get_buffer_size: GetBufferSize,
    cross_corr_norm: CrossCorrNorm,
    /// Keep the libraries mapped for as long as the function pointers live (the process).
    _libraries: [libloading::Library; 2],
}

static IPP: OnceLock<Result<Ipp, String>> = OnceLock::new();

/// Loads IPP from `model_dir/ipp` once per process (later calls return the first outcome).
/// An error leaves slides on the exact correlation; the caller decides whether to say so.
pub fn load(model_dir: &Path) -> Result<(), String> {
    IPP.get_or_init(|| open(&model_dir.join(IPP_FOLDER)))
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}

fn open(folder: &Path) -> Result<Ipp, String> {
    let library = |name: &str| {
        let path = folder.join(name);
        // SAFETY: IPP's initialisers only detect the CPU; no other code runs on load.
        unsafe { libloading::Library::new(&path) }.map_err(|e| format!("{}: {e}", path.display()))
    };
    // The core first: the image library names it as a dependency by its soname.
    let core = library(CORE_LIBRARY)?;
    let image = library(IMAGE_LIBRARY)?;
    // SAFETY: the symbols are IPP's C functions with exactly these signatures (ippi.h), and the
    // pointers are kept no longer than the libraries (both live in the same struct, forever).
    unsafe {
        let init = core
            .get::<unsafe extern "C" fn() -> c_int>(b"ippInit\0")
            .map_err(|e| e.to_string())?;
        // Negative is an error; positive a warning (e.g. a CPU without the newest features).
        let status = init();
        if status < 0 {
            return Err(format!("ippInit failed: status {status}"));
        }
        let get_buffer_size = *image
            .get::<GetBufferSize>(b"ippiCrossCorrNormGetBufferSize\0")
            .map_err(|e| e.to_string())?;
        let cross_corr_norm = *image
            .get::<CrossCorrNorm>(b"ippiCrossCorrNorm_8u32f_C1R\0")
            .map_err(|e| e.to_string())?;
        Ok(Ipp {
            get_buffer_size,
            cross_corr_norm,
            _libraries: [core, image],
        })
    }
}

/// IPP's raw cross-correlation of every valid position, row-major, as OpenCV stores it before
/// normalising; `None` when IPP is not loaded or refuses the sizes.
pub fn cross_correlation(image: &Mat, templ: &Mat) -> Option<Vec<f32>> {
    let ipp = IPP.get()?.as_ref().ok()?;
    assert!(image.channels == 1 && templ.channels == 1, "single channel");
    assert!(templ.width <= image.width && templ.height <= image.height);
    let side = |v: usize| c_int::try_from(v).ok();
    let image_size = IppiSize {
        width: side(image.width)?,
        height: side(image.height)?,
    };
    let templ_size = IppiSize {
        width: side(templ.width)?,
        height: side(templ.height)?,
    };
    let out_width = image.width - templ.width + 1;
    let out_height = image.height - templ.height + 1;
    let mut buffer_size: c_int = 0;
    // SAFETY: plain values and a valid out-pointer.
    let status =
        unsafe { (ipp.get_buffer_size)(image_size, templ_size, ALGORITHM, &mut buffer_size) };
    if status < 0 || buffer_size < 0 {
        return None;
    }
    // IPP wants its work buffer 64-byte aligned (OpenCV allocates it with ippMalloc).
    const ALIGN: usize = 64;
    let mut work = vec![0u8; buffer_size as usize + ALIGN];
    let offset = work.as_ptr().align_offset(ALIGN);
    let mut out = take(out_width * out_height, 0f32);
    // SAFETY: every pointer covers the rows and steps passed with it: the image and template
    // are continuous `width`-byte rows, `out` holds out_height rows of out_width floats, and
    // the work buffer holds `buffer_size` bytes from its aligned start.
    let status = unsafe {
        (ipp.cross_corr_norm)(
            image.data.as_ptr(),
            side(image.width)?,
            image_size,
            templ.data.as_ptr(),
            side(templ.width)?,
            templ_size,
            out.as_mut_ptr(),
            side(out_width * 4)?,
            ALGORITHM,
            work.as_mut_ptr().add(offset),
        )
    };
    (status >= 0).then_some(out)
}
