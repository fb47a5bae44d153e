/** The swarm's block picker: pure, no timers, no I/O; see NOTES.md for the strategy. */
export { Picker } from './picker.js';
export type { BlockRequest, PeerKey, PickerOptions, PiecePhase } from './types.js';
