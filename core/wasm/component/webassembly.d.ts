/**
 * The WebAssembly JS API as Node 20 provides it. TypeScript only declares it in lib.dom, which this project does
 * not load, and @types/node 20 leaves it out; this is the subset core/wasm uses. Global: one copy for the repo.
 */
declare global {
  namespace WebAssembly {
    type ImportValue = ((...args: never[]) => unknown) | Global | Memory | Table | number | bigint;
    type Imports = Record<string, Record<string, ImportValue>>;
    type Exports = Record<string, unknown>;
    type BufferSource = ArrayBufferView | ArrayBuffer;

    interface ModuleImportDescriptor {
      module: string;
      name: string;
      kind: 'function' | 'table' | 'memory' | 'global' | 'tag';
    }
    interface ModuleExportDescriptor {
      name: string;
      kind: 'function' | 'table' | 'memory' | 'global' | 'tag';
    }

    class Module {
      constructor(bytes: BufferSource);
      static imports(module: Module): ModuleImportDescriptor[];
      static exports(module: Module): ModuleExportDescriptor[];
      static customSections(module: Module, sectionName: string): ArrayBuffer[];
    }
    class Instance {
      constructor(module: Module, imports?: Imports);
      readonly exports: Exports;
    }
    interface MemoryDescriptor {
      initial: number;
      maximum?: number;
      shared?: boolean;
    }
    class Memory {
      constructor(descriptor: MemoryDescriptor);
      readonly buffer: ArrayBuffer;
      grow(delta: number): number;
    }
    interface TableDescriptor {
      element: 'anyfunc' | 'externref';
      initial: number;
      maximum?: number;
    }
    class Table {
      constructor(descriptor: TableDescriptor, value?: unknown);
      readonly length: number;
      get(index: number): unknown;
      grow(delta: number, value?: unknown): number;
      set(index: number, value?: unknown): void;
    }
    interface GlobalDescriptor {
      value: 'i32' | 'i64' | 'f32' | 'f64' | 'externref' | 'anyfunc';
      mutable?: boolean;
    }
    class Global {
      constructor(descriptor: GlobalDescriptor, value?: unknown);
      value: unknown;
    }
    class CompileError extends Error {}
    class LinkError extends Error {}
    class RuntimeError extends Error {}

    function compile(bytes: BufferSource): Promise<Module>;
    function validate(bytes: BufferSource): boolean;
    function instantiate(module: Module, imports?: Imports): Promise<Instance>;
    function instantiate(bytes: BufferSource, imports?: Imports): Promise<{ module: Module; instance: Instance }>;
  }
}

export {};
