import { expect } from 'chai';
import { Testing } from 'cdk8s';
import { DEFAULT_MESH, planOf, SCENARIOS } from '@flatline/mesh';
import { FaultChart, MeshBaselineChart } from '../src/charts.ts';

describe('cdk8s charts of the mesh', () => {
  it('the baseline holds a VirtualService per host, and nothing else (the device DestinationRule is the system\'s)', () => {
    const objects = Testing.synth(new MeshBaselineChart(Testing.app(), DEFAULT_MESH)) as Array<{ kind: string; metadata: { name: string } }>;
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).to.deep.equal([
      'VirtualService/devices',
      'VirtualService/storage',
      'VirtualService/query',
    ]);
  });

  for (const s of SCENARIOS) {
    it(`${s.name}: its chart replaces the baseline of the same name and applies exactly the declaration`, () => {
      const fault = s.build({ flats: ['7'], percent: 20 });
      const [vs, ...rest] = Testing.synth(new FaultChart(Testing.app(), fault, DEFAULT_MESH)) as Array<{ kind: string; metadata: { name: string } }>;
      expect(rest).to.deep.equal([]);
      expect(vs?.kind).to.equal('VirtualService');
      expect(vs?.metadata.name).to.equal(fault.host);
      expect(planOf(vs as unknown as Record<string, unknown>)).to.deep.equal([fault]);
    });
  }
});
