/** The swarm's block picker: pure, no timers, no I/O; see NOTES.md for the strategy. */
export { Picker, type CancelList } from './picker.js';
export { Geometry } from './geometry.js';
export type { BlockRequest, PeerKey, PickerOptions, PiecePhase } from './types.js';
