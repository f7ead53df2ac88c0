"""A three-layer convolutional network (course-assignment style):

conv - relu - 2x2 max pool - affine - relu - affine - softmax
"""
import numpy as np

import layers


class ThreeLayerConvNet(object):
    def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7,
                 hidden_dim=100, num_classes=10, weight_scale=1e-3, reg=0.0,
                 dtype=np.float32, seed=0):
        rng = np.random.RandomState(seed)
        self.params = {}
        self.reg = reg
        self.dtype = dtype
        C, H, W = input_dim
        self.params['W1'] = weight_scale * rng.randn(num_filters, C, filter_size, filter_size)
        self.params['b1'] = np.zeros(num_filters)
        self.params['W2'] = weight_scale * rng.randn(num_filters * (H // 2) * (W // 2),
                                                     hidden_dim)
        self.params['b2'] = np.zeros(hidden_dim)
        self.params['W3'] = weight_scale * rng.randn(hidden_dim, num_classes)
        self.params['b3'] = np.zeros(num_classes)
        for k, v in self.params.items():
            self.params[k] = v.astype(dtype)

    def loss(self, X, y=None):
        W1, b1 = self.params['W1'], self.params['b1']
        W2, b2 = self.params['W2'], self.params['b2']
        W3, b3 = self.params['W3'], self.params['b3']
        filter_size = W1.shape[2]
        conv_param = {'stride': 1, 'pad': (filter_size - 1) // 2}
        pool_param = {'pool_height': 2, 'pool_width': 2, 'stride': 2}

        out1, cache1 = layers.conv_relu_pool_forward(X, W1, b1, conv_param, pool_param)
        out2, cache2 = layers.affine_relu_forward(out1, W2, b2)
        scores, cache3 = layers.affine_forward(out2, W3, b3)
        if y is None:
            return scores

        grads = {}
        loss, dscores = layers.softmax_loss(scores, y)
        loss += 0.5 * self.reg * sum(np.sum(self.params[w] ** 2) for w in ('W1', 'W2', 'W3'))
        dout2, grads['W3'], grads['b3'] = layers.affine_backward(dscores, cache3)
        dout1, grads['W2'], grads['b2'] = layers.affine_relu_backward(dout2, cache2)
        _, grads['W1'], grads['b1'] = layers.conv_relu_pool_backward(dout1, cache1)
        for w in ('W1', 'W2', 'W3'):
            grads[w] += self.reg * self.params[w]
        return loss, grads
