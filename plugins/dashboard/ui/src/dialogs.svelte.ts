// One modal dialog for the whole page (a native <dialog>, so focus is trapped and Escape cancels): confirmations
// of destructive actions and the weight prompt. Callers await the answer.

export interface DialogRequest {
  title: string;
  message: string;
  confirmLabel: string;
  danger: boolean;
  /** When set, the dialog asks for a whole number in this range, starting at `value`. */
  number: { label: string; min: number; max: number; value: number } | null;
  resolve: (answer: { ok: boolean; value: number }) => void;
}

class Dialogs {
  current = $state<DialogRequest | null>(null);

  confirm(title: string, message: string, confirmLabel: string, danger = true): Promise<boolean> {
    return new Promise((resolve) => {
      this.current?.resolve({ ok: false, value: 0 });
      this.current = { title, message, confirmLabel, danger, number: null, resolve: (answer) => resolve(answer.ok) };
    });
  }

  askNumber(title: string, message: string, field: { label: string; min: number; max: number; value: number }): Promise<number | null> {
    return new Promise((resolve) => {
      this.current?.resolve({ ok: false, value: 0 });
      this.current = {
        title,
        message,
        confirmLabel: 'Save',
        danger: false,
        number: field,
        resolve: (answer) => resolve(answer.ok ? answer.value : null),
      };
    });
  }

  answer(ok: boolean, value = 0): void {
    const request = this.current;
    this.current = null;
    request?.resolve({ ok, value });
  }
}

export const dialogs = new Dialogs();
