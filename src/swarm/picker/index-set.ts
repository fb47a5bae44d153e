/**
 * A set of small non-negative integers (piece indices) below a fixed capacity, with O(1) add,
 * delete and membership and a dense array to iterate. Deleting swaps the last member into the hole,
 * so iteration order is not insertion order. Iterating forward while deleting the current member
 * is safe if the loop re-reads the same slot (the moved member has not been visited yet).
 */
export class IndexSet {
  /** Members in `items[0 .. size)`; slots past `size` are garbage. */
  readonly items: Int32Array;
  size = 0;
  private readonly pos: Int32Array;

  constructor(capacity: number) {
    this.items = new Int32Array(capacity);
    this.pos = new Int32Array(capacity).fill(-1);
  }

  has(i: number): boolean { return this.pos[i]! >= 0; }

  add(i: number): void {
    if (this.pos[i]! >= 0) return;
    this.pos[i] = this.size;
    this.items[this.size++] = i;
  }

  delete(i: number): void {
    const at = this.pos[i]!;
    if (at < 0) return;
    const last = this.items[--this.size]!;
    this.items[at] = last;
    this.pos[last] = at;
    this.pos[i] = -1;
  }
}
