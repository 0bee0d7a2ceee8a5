#!/usr/bin/env node
// The CLI as esbuild bundles it (npm run build: dist/bundle, scripts/bundle-cli.mjs): one
// file and a chunk per part loaded when used, which starts faster than a file per module.
import { main } from '../dist/bundle/main.js';
main(process.argv);
