// Hash routes (docs/dashboard.md): #/instances, #/instances/<service>/<id>, #/functions, #/plugins, #/audit,
// #/tokens, #/deploy, #/fleet (fleet mode: the nodes). The server serves one page; a reload keeps the view.

export type Route =
  | { name: 'instances' }
  | { name: 'instance'; service: string; id: string }
  | { name: 'deploy' }
  | { name: 'functions' }
  | { name: 'plugins' }
  | { name: 'audit' }
  | { name: 'tokens' }
  | { name: 'fleet' };

function parse(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').map((part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return '';
    }
  });
  switch (parts[0]) {
    case 'instances':
      if (parts[1] && parts[2]) return { name: 'instance', service: parts[1], id: parts[2] };
      return { name: 'instances' };
    case 'deploy':
    case 'functions':
    case 'plugins':
    case 'audit':
    case 'tokens':
    case 'fleet':
      return { name: parts[0] };
    default:
      return { name: 'instances' };
  }
}

class Router {
  current = $state<Route>(parse(location.hash));

  constructor() {
    addEventListener('hashchange', () => {
      this.current = parse(location.hash);
    });
  }
}

export const router = new Router();

export const instanceHref = (service: string, id: string): string => `#/instances/${encodeURIComponent(service)}/${encodeURIComponent(id)}`;
