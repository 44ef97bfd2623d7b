import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The build is committed (web/dist) and embedded in the binary; CI rebuilds it and fails if it
// differs, so it must come out the same every time: content-hashed names, no timestamps.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 1000,
  },
  server: {
    proxy: { '/api': 'http://127.0.0.1:8080', '/hooks': 'http://127.0.0.1:8080' },
  },
});
