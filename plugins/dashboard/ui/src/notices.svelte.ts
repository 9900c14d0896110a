// Short messages about what an action did or why it failed, shown in a live region.

export interface Notice {
  id: number;
  text: string;
  error: boolean;
}

class Notices {
  list = $state<Notice[]>([]);
  private next = 1;

  push(text: string, error = false): void {
    const notice = { id: this.next++, text, error };
    this.list = [...this.list.slice(-4), notice];
    setTimeout(() => this.dismiss(notice.id), error ? 10_000 : 4_000);
  }

  dismiss(id: number): void {
    this.list = this.list.filter((notice) => notice.id !== id);
  }
}

export const notices = new Notices();
