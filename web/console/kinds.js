// The kinds of captcha the try-it page solves, as data: the endpoint, the images it takes,
// its options, and how its answer is shown. The page offers a kind only when the server's
// API description (/openapi.json) has its endpoint, so a server without detection or slides
// shows text recognition alone, and one with them shows them without a change here.
//
// Answer shapes are the contract's (docs/api.md): text for `ocr` (a value with `math`); for
// `detect` a list of boxes [[x1, y1, x2, y2], ...] in the image's pixels; for `click` the
// clicks [[x, y], ...] in the hint's order (with `rectangles`, the boxes around them); for
// `slide` {target: [x, y], target_x, target_y}, the position of the piece on the background.
// An image with a `sample` offers a built-in example (for a first try without a captcha at
// hand); an `optional` image may be left out.

/** The models every server has (a user's own or a public one may be typed in: #/models). */
const MODELS = ['old', 'beta'];

export const KINDS = [
  {
    id: 'ocr',
    label: 'Text',
    path: '/v2/decode/upload',
    images: [{ field: 'file', label: 'Captcha image', sample: 'sample.png' }],
    options: [
      { field: 'model', label: 'Model', type: 'text', suggestions: MODELS, value: 'old' },
      { field: 'png_fix', label: 'png_fix: put a transparent PNG on white first', type: 'checkbox' },
      { field: 'probability', label: 'Confidence (probability)', type: 'checkbox', checked: true },
      {
        field: 'charset_range',
        label: 'charset_range',
        type: 'text',
        placeholder: 'characters allowed, e.g. 0123456789, or a number',
      },
      { field: 'math', label: 'math: read an arithmetic captcha (4x8=?) and answer its value', type: 'checkbox' },
      {
        field: 'numeric',
        label: 'numeric',
        type: 'text',
        placeholder: '1 digits, 2 letters, 3 either, 4 both (0: any)',
      },
      { field: 'min_len', label: 'min_len', type: 'text', placeholder: 'fewest characters' },
      { field: 'max_len', label: 'max_len', type: 'text', placeholder: 'most characters' },
      { field: 'case_insensitive', label: 'case_insensitive: letter case does not matter', type: 'checkbox' },
    ],
    describe: (result) => String(result),
    draw: null,
  },
  {
    id: 'detect',
    label: 'Click (detection)',
    path: '/v2/decode/detect',
    images: [{ field: 'file', label: 'Captcha image' }],
    options: [],
    describe: (boxes) => `${boxes.length} box${boxes.length === 1 ? '' : 'es'}: ${JSON.stringify(boxes)}`,
    draw: drawBoxes,
  },
  {
    id: 'click',
    label: 'Click in order',
    path: '/v2/decode/click',
    images: [
      { field: 'file', label: 'Captcha image' },
      { field: 'hint_image', label: 'Hint image (optional): the characters to click', optional: true },
    ],
    options: [
      {
        field: 'hint',
        label: 'Hint: the characters to click, in order',
        type: 'text',
        placeholder: 'e.g. 有她验 (or a hint image; neither: every character)',
      },
      { field: 'rectangles', label: 'rectangles: the boxes instead of their centres', type: 'checkbox' },
    ],
    describe: (clicks) => `${clicks.length} click${clicks.length === 1 ? '' : 's'}: ${JSON.stringify(clicks)}`,
    draw: drawClicks,
  },
  {
    id: 'slide',
    label: 'Slide',
    path: '/v2/decode/slide',
    images: [
      { field: 'target', label: 'The piece (target)' },
      { field: 'background', label: 'The background' },
    ],
    options: [
      { field: 'mode', label: 'Mode', type: 'select', choices: ['match', 'simple', 'comparison'] },
    ],
    describe: (slide) => `x = ${slide.target_x}, y = ${slide.target_y}`,
    draw: drawSlide,
  },
];

/** The kinds this server solves: those whose endpoint its API description has (POST). */
export function availableKinds(openapi) {
  return KINDS.filter((kind) => openapi?.paths?.[kind.path]?.post);
}

/** Draws the detection boxes over the image (index 0) on `canvas`. */
function drawBoxes(canvas, images, boxes) {
  const context = paint(canvas, images[0]);
  context.lineWidth = Math.max(2, canvas.width / 200);
  context.strokeStyle = '#d1004f';
  context.font = `${Math.max(12, canvas.width / 30)}px sans-serif`;
  context.fillStyle = '#d1004f';
  boxes.forEach(([x1, y1, x2, y2], index) => {
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
    context.fillText(String(index + 1), x1 + 2, Math.max(y1 - 4, 12));
  });
}

/** Draws the clicks over the image (index 0), numbered in order: points as rings, boxes
 *  (`rectangles`) as boxes. */
function drawClicks(canvas, images, clicks) {
  if (clicks.some((click) => click.length === 4)) {
    drawBoxes(canvas, images, clicks);
    return;
  }
  const context = paint(canvas, images[0]);
  const radius = Math.max(6, canvas.width / 40);
  context.lineWidth = Math.max(2, canvas.width / 200);
  context.strokeStyle = '#d1004f';
  context.fillStyle = '#d1004f';
  context.font = `bold ${Math.max(12, canvas.width / 25)}px sans-serif`;
  clicks.forEach(([x, y], index) => {
    context.beginPath();
    context.arc(x, y, radius, 0, 2 * Math.PI);
    context.stroke();
    context.fillText(String(index + 1), x + radius + 2, y + radius / 2);
  });
}

/** Marks where the piece goes on the background (index 1). */
function drawSlide(canvas, images, slide) {
  const context = paint(canvas, images[1]);
  context.lineWidth = Math.max(2, canvas.width / 200);
  context.strokeStyle = '#d1004f';
  context.beginPath();
  context.moveTo(slide.target_x, 0);
  context.lineTo(slide.target_x, canvas.height);
  context.stroke();
  const piece = images[0];
  if (piece) context.strokeRect(slide.target_x, slide.target_y, piece.naturalWidth, piece.naturalHeight);
}

/** Sizes the canvas to the image's pixels and paints it: answers are in those pixels. */
function paint(canvas, image) {
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(image, 0, 0);
  return context;
}
