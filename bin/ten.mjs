#!/usr/bin/env node
// `ten` under its old name, for what runs bin/ten.mjs (tests, docs, `npm start`): the same as bin/ten.cjs, the
// package's bin (CommonJS, so the installed package's quick commands load no ES module of ours: see that file).
import { createRequire } from 'node:module';

createRequire(import.meta.url)('./ten.cjs');
