/** Recorded runs: the Python capture format and its Arrow IPC form. */
export { CAPTURE_MAGIC, captureToArrow, isCapture, parseCapture, type CapturedMessage } from './capture.js';
