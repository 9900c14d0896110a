/** What a bench hands back besides its figures: goal lines, and the JSON file of results. */
import { writeFileSync } from 'node:fs';

/** A goal line: the measured figure, the goal, and whether it is met. */
export interface Goal {
  name: string;
  measured: string;
  goal: string;
  met: boolean;
}

export function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}
